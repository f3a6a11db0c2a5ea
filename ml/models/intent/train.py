"""Fine-tuning the intent classifier: mean-pooled encoder + linear head, warm-started from a
logistic regression on frozen embeddings, with checkpoint/resume and MLflow logging.

Why this recipe: all-MiniLM-L6-v2 was trained with mean pooling; a [CLS]-pooler
sequence-classification head fine-tuned from scratch ended below a frozen-encoder + LR
baseline here. Starting the head at the LR solution and keeping the best validation epoch
(epoch 0 = the warm start itself) means fine-tuning can only replace the baseline by beating it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ml.models.intent import baseline as base
from ml.models.intent.data import (
    length_grouped_batches,
    load_labels,
    load_split,
    pad_batch,
    padding_stats,
    split_path,
    steps_per_epoch,
    tokenize,
)

if TYPE_CHECKING:
    import pandas as pd
    import torch
    from torch.optim.lr_scheduler import LambdaLR

    from ml.core.config import Params
    from ml.core.config.intent import IntentTrainConfig
    from ml.models.intent.model import IntentNet

log = logging.getLogger(__name__)

EpochCallback = Callable[[int, dict[str, float]], None]
CHECKPOINT_DIR = "checkpoints"
MODEL_DIR = "model"


def set_seeds(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    import torch

    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def run_fingerprint(params: Params, processed_dir: Path, labels: list[str]) -> str:
    """What a checkpoint must match to be resumed: training settings, labels and data."""
    from ml.stack.tracking import data_fingerprint

    cfg = params.intent.train.model_dump(mode="json")
    cfg.pop("resume", None)
    blob = {
        "train": cfg,
        "labels": labels,
        "data": {s: data_fingerprint(split_path(processed_dir, s)) for s in ("train", "val")},
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]


def _subsample(df: pd.DataFrame, n: int | None, seed: int) -> pd.DataFrame:
    if n is None or n >= len(df):
        return df
    return df.sample(n=n, random_state=seed).reset_index(drop=True)


def layer_lr_scale(name: str, n_layers: int, decay: float) -> float:
    """Learning-rate factor of parameter ``name`` under layer-wise decay: 1 for the head (and
    anything outside the encoder stack), ``decay ** (n_layers - 1 - i)`` for encoder layer i,
    ``decay ** n_layers`` for the embeddings (lower layers hold general language: move less)."""
    if decay == 1.0:
        return 1.0
    match = _LAYER_INDEX.search(name)
    if match:
        return float(decay ** (n_layers - 1 - int(match.group(1))))
    if ".embeddings." in name:
        return float(decay**n_layers)
    return 1.0


_LAYER_INDEX = re.compile(r"\.layer\.(\d+)\.")


def _optimizer(
    net: IntentNet, lr: float, weight_decay: float, layer_decay: float = 1.0
) -> torch.optim.Optimizer:
    import torch

    n_layers = int(getattr(net.encoder.config, "num_hidden_layers", 0))
    groups: dict[tuple[float, float], list[torch.nn.Parameter]] = {}
    for name, p in net.named_parameters():
        # Standard practice: no weight decay on biases and LayerNorm weights.
        decay = 0.0 if p.ndim < 2 or "LayerNorm" in name else weight_decay
        scale = layer_lr_scale(name, n_layers, layer_decay)
        groups.setdefault((decay, scale), []).append(p)
    param_groups = [
        {"params": ps, "weight_decay": decay, "lr": lr * scale}
        for (decay, scale), ps in groups.items()
    ]
    try:
        # One fused kernel per step instead of a loop over ~100 parameter tensors.
        return torch.optim.AdamW(param_groups, lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(param_groups, lr=lr)


def _atomic_save(obj: Any, path: Path) -> None:
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


@dataclass
class _FitData:
    """The splits and what training reads from them, computed once per run."""

    labels: list[str]
    train_df: pd.DataFrame
    val_df: pd.DataFrame
    train_ids: list[list[int]]
    lengths: list[int]
    y_train: torch.Tensor
    val_texts: list[str]
    val_true: list[str]


@dataclass
class _RunFiles:
    """Where a run keeps its resume state, best weights and LR baseline, and what they match."""

    checkpoints: Path
    state: Path
    best: Path
    baseline: Path
    fingerprint: str


@dataclass
class _FitState:
    """Everything one fine-tuning run carries from phase to phase (also what a checkpoint saves)."""

    params: Params
    data: _FitData
    files: _RunFiles
    device: torch.device
    net: IntentNet
    tokenizer: Any
    pad_id: int
    optimizer: torch.optim.Optimizer
    scheduler: LambdaLR
    history: list[dict[str, float]] = field(default_factory=list)
    start_epoch: int = 1
    best_f1: float = -1.0
    best_epoch: int = 0
    bad_epochs: int = 0
    finished: bool = False
    train_tokens: int = 0
    train_seconds: float = 0.0

    @property
    def cfg(self) -> IntentTrainConfig:
        return self.params.intent.train

    @property
    def bf16(self) -> bool:
        """Forward passes under bf16 autocast (intent.train.precision)."""
        from ml.models.encoders import use_bf16

        return use_bf16(self.device, self.cfg.precision)


@dataclass
class _EpochStats:
    """Running totals of one training epoch."""

    started: float
    loss_sum: float = 0.0
    hits: int = 0
    seen: int = 0


def fit_intent(
    params: Params,
    processed_dir: str | Path,
    out_dir: str | Path,
    *,
    resume: bool | None = None,
    on_epoch_end: EpochCallback | None = None,
) -> dict[str, Any]:
    """Train and write the model bundle to ``<out_dir>/model``; no MLflow (see train_intent).

    A checkpoint is written after every epoch to ``<out_dir>/checkpoints``; it is resumed
    automatically when it was written for the same settings and data (``resume`` overrides
    params.intent.train.resume).
    """
    cfg = params.intent.train
    processed_dir, out_dir = Path(processed_dir), Path(out_dir)
    started = time.perf_counter()
    labels, train_df, val_df = _load_fit_frames(processed_dir, cfg.max_train_samples, cfg.seed)
    model_path, device, net, tokenizer = _build_seeded_net(params, len(labels))
    pad_id = tokenizer.pad_token_id or 0
    data = _encode_fit_data(labels, train_df, val_df, tokenizer, cfg.max_length)
    files = _run_files(params, processed_dir, out_dir, labels)
    saved = _load_resumable_state(files, cfg.resume if resume is None else resume, device)
    coef, intercept = _baseline_head(
        params, net, tokenizer, data, files.baseline, fresh=saved is None
    )
    run = _new_fit_state(params, data, files, device, net, tokenizer, pad_id)
    if saved is not None:
        _restore_fit_state(run, saved)
    else:
        _start_fresh(run, coef, intercept, on_epoch_end)
    _train_epochs(run, on_epoch_end)
    val, oos, model_dir = _write_best_bundle(run, model_path, out_dir)
    return _fit_summary(run, model_dir, val, oos, started, resumed=saved is not None)


def _load_fit_frames(
    processed_dir: Path, max_train_samples: int | None, seed: int
) -> tuple[list[str], pd.DataFrame, pd.DataFrame]:
    labels = load_labels(processed_dir)
    train_df = _subsample(load_split(processed_dir, "train", labels), max_train_samples, seed)
    val_df = load_split(processed_dir, "val", labels)
    return labels, train_df, val_df


def _build_seeded_net(params: Params, n_labels: int) -> tuple[Path, torch.device, IntentNet, Any]:
    """Resolve the encoder and device, seed the RNGs, then build the net (its new head is drawn
    from the seeded RNG)."""
    from ml.models.encoders import pick_device, resolve_model_path
    from ml.models.intent.model import build_net

    cfg = params.intent.train
    model_path = resolve_model_path(cfg.model_path)
    device = pick_device()
    set_seeds(cfg.seed)
    net, tokenizer = build_net(model_path, n_labels, cfg.dropout)
    net.to(device)
    return model_path, device, net, tokenizer


def _encode_fit_data(
    labels: list[str],
    train_df: pd.DataFrame,
    val_df: pd.DataFrame,
    tokenizer: Any,
    max_length: int,
) -> _FitData:
    import torch

    train_ids = tokenize(tokenizer, train_df["text"].tolist(), max_length)
    return _FitData(
        labels=labels,
        train_df=train_df,
        val_df=val_df,
        train_ids=train_ids,
        lengths=[len(x) for x in train_ids],
        y_train=torch.tensor(train_df["y"].to_numpy(), dtype=torch.long),
        val_texts=val_df["text"].tolist(),
        val_true=val_df["label"].astype(str).tolist(),
    )


def _run_files(params: Params, processed_dir: Path, out_dir: Path, labels: list[str]) -> _RunFiles:
    checkpoints = out_dir / CHECKPOINT_DIR
    return _RunFiles(
        checkpoints=checkpoints,
        state=checkpoints / "state.pt",
        best=checkpoints / "best.pt",
        baseline=out_dir / "baseline_lr.npz",
        fingerprint=run_fingerprint(params, processed_dir, labels),
    )


def _load_resumable_state(
    files: _RunFiles, resume: bool, device: torch.device
) -> dict[str, Any] | None:
    """The saved state when resuming is asked for and it was written for this run, else None."""
    import torch

    if not (resume and files.state.is_file()):
        return None
    state: dict[str, Any] = torch.load(files.state, map_location=device, weights_only=False)
    if state.get("fingerprint") != files.fingerprint:
        log.warning("ignoring %s: written for other settings or data", files.state)
        return None
    return state


def _baseline_head(
    params: Params,
    net: IntentNet,
    tokenizer: Any,
    data: _FitData,
    baseline_file: Path,
    *,
    fresh: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Frozen-encoder + logistic-regression baseline; also the head's starting point.

    Fitted on a fresh run (or when its file is gone), else read back from ``baseline_file``.
    """
    from ml.models.intent.model import embed_texts

    cfg = params.intent.train
    if fresh or not baseline_file.is_file():
        emb = embed_texts(
            net,
            tokenizer,
            data.train_df["text"].tolist(),
            max_length=cfg.max_length,
            batch_size=params.intent.inference_batch_size,
        )
        coef, intercept = base.fit_logistic_head(
            emb, data.train_df["y"].to_numpy(), len(data.labels), c=cfg.baseline_c, seed=cfg.seed
        )
        base.save_linear(baseline_file, coef, intercept, data.labels)
    coef, intercept, _ = base.load_linear(baseline_file)
    return coef, intercept


def _new_fit_state(
    params: Params,
    data: _FitData,
    files: _RunFiles,
    device: torch.device,
    net: IntentNet,
    tokenizer: Any,
    pad_id: int,
) -> _FitState:
    """AdamW and a linear warmup/decay schedule over all epochs' optimizer steps."""
    from transformers import get_linear_schedule_with_warmup

    cfg = params.intent.train
    optimizer = _optimizer(net, cfg.learning_rate, cfg.weight_decay, cfg.layer_lr_decay)
    n_batches = -(-len(data.train_ids) // cfg.batch_size)
    total_steps = steps_per_epoch(n_batches, cfg.grad_accum_steps) * cfg.epochs
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(cfg.warmup_fraction * total_steps), total_steps
    )
    return _FitState(
        params=params,
        data=data,
        files=files,
        device=device,
        net=net,
        tokenizer=tokenizer,
        pad_id=pad_id,
        optimizer=optimizer,
        scheduler=scheduler,
    )


def _restore_fit_state(run: _FitState, state: dict[str, Any]) -> None:
    run.net.load_state_dict(state["net"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    _set_rng_state(state["rng"])
    run.history = state["history"]
    run.start_epoch, run.best_f1, run.best_epoch = (
        state["epoch"] + 1,
        state["best_f1"],
        state["best_epoch"],
    )
    run.bad_epochs, run.finished = state["bad_epochs"], state["finished"]
    log.info("resuming from %s after epoch %d", run.files.state, state["epoch"])


def _start_fresh(
    run: _FitState, coef: np.ndarray, intercept: np.ndarray, on_epoch_end: EpochCallback | None
) -> None:
    """Epoch 0: the head at the LR solution (when warm-starting) is the first best model."""
    run.files.checkpoints.mkdir(parents=True, exist_ok=True)
    if run.cfg.warm_start_head:
        from ml.models.intent.model import set_head_from_linear

        set_head_from_linear(run.net, coef, intercept)
        warm, _ = _evaluate_val(run)
        run.best_f1 = warm["macro_f1"]
        run.history.append({"epoch": 0, **{f"val_{k}": v for k, v in warm.items()}})
        if on_epoch_end:
            on_epoch_end(0, run.history[-1])
    else:
        run.best_f1 = -1.0
    _atomic_save(_cpu_weights(run.net), run.files.best)


def _cpu_weights(net: IntentNet) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in net.state_dict().items()}


def _evaluate_val(run: _FitState) -> tuple[dict[str, float], np.ndarray]:
    """Validation metrics (plus mean log-loss) and the class probabilities."""
    from ml.core.metrics import classification_metrics
    from ml.models.intent.model import predict_proba

    probs = predict_proba(
        run.net,
        run.tokenizer,
        run.data.val_texts,
        max_length=run.cfg.max_length,
        batch_size=run.params.intent.inference_batch_size,
    )
    pred = [run.data.labels[i] for i in probs.argmax(axis=1)]
    metrics = classification_metrics(run.data.val_true, pred)
    picked = probs[np.arange(len(probs)), run.data.val_df["y"].to_numpy()]
    metrics["loss"] = float(-np.log(np.clip(picked, 1e-12, None)).mean())
    return metrics, probs


def _train_epochs(run: _FitState, on_epoch_end: EpochCallback | None) -> None:
    import torch

    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=run.cfg.label_smoothing)
    for epoch in range(run.start_epoch, run.cfg.epochs + 1):
        if run.finished:
            break
        stats = _train_one_epoch(run, epoch, loss_fn)
        _end_epoch(run, epoch, stats, on_epoch_end)


def _train_one_epoch(run: _FitState, epoch: int, loss_fn: torch.nn.Module) -> _EpochStats:
    from ml.core.progress import progress

    cfg = run.cfg
    run.net.train()
    # Batch order depends only on (seed, epoch), so a resumed run sees the same batches.
    batches = length_grouped_batches(
        run.data.lengths,
        cfg.batch_size,
        group_batches=cfg.length_group_batches,
        seed=cfg.seed + epoch,
    )
    stats = _EpochStats(started=time.perf_counter())
    bar = progress(batches, desc=f"epoch {epoch}/{cfg.epochs}", unit="batch", logger=log)
    for step, batch in enumerate(bar, start=1):
        step_optimizer = step % cfg.grad_accum_steps == 0 or step == len(batches)
        loss, hits, tokens = _train_batch(run, batch, loss_fn, step_optimizer)
        stats.loss_sum += loss * len(batch)
        stats.hits += hits
        stats.seen += len(batch)
        run.train_tokens += tokens
        bar.set_postfix(loss=f"{stats.loss_sum / stats.seen:.4f}")
    run.train_seconds += time.perf_counter() - stats.started
    return stats


def _train_batch(
    run: _FitState, batch: list[int], loss_fn: torch.nn.Module, step_optimizer: bool
) -> tuple[float, int, int]:
    """Forward/backward on one batch (gradients accumulate until ``step_optimizer``); returns
    the batch's mean loss, correct predictions and non-padding tokens."""
    import torch

    from ml.models.intent.model import autocast

    input_ids, mask = pad_batch([run.data.train_ids[i] for i in batch], run.pad_id)
    input_ids, mask, target = (
        input_ids.to(run.device),
        mask.to(run.device),
        run.data.y_train[batch].to(run.device),
    )
    twice = run.cfg.rdrop_alpha > 0
    if twice:  # one pass over the doubled batch: two dropout masks per utterance
        input_ids, mask = torch.cat([input_ids, input_ids]), torch.cat([mask, mask])
    with autocast(run.device, enabled=run.bf16):
        logits = run.net(input_ids, mask)
    loss = rdrop_loss(logits.float(), target, loss_fn, run.cfg.rdrop_alpha)
    if twice:
        logits, mask = logits[: len(target)], mask[: len(target)]
    (loss / run.cfg.grad_accum_steps).backward()
    if step_optimizer:
        torch.nn.utils.clip_grad_norm_(run.net.parameters(), run.cfg.max_grad_norm)
        run.optimizer.step()
        run.scheduler.step()
        run.optimizer.zero_grad(set_to_none=True)
    return loss.item(), int((logits.argmax(dim=-1) == target).sum()), int(mask.sum())


def rdrop_loss(
    logits: torch.Tensor, target: torch.Tensor, loss_fn: torch.nn.Module, alpha: float
) -> torch.Tensor:
    """``loss_fn`` on ``logits``; with ``alpha`` > 0 the logits are two passes of the same batch
    stacked (R-Drop): the mean of both losses plus ``alpha`` times their symmetric KL."""
    if alpha == 0:
        return loss_fn(logits, target)
    import torch.nn.functional as F

    first, second = logits.chunk(2)
    log_p, log_q = F.log_softmax(first, dim=-1), F.log_softmax(second, dim=-1)
    kl = F.kl_div(log_p, log_q, reduction="batchmean", log_target=True) + F.kl_div(
        log_q, log_p, reduction="batchmean", log_target=True
    )
    return (loss_fn(first, target) + loss_fn(second, target)) / 2 + alpha * kl / 2


def _end_epoch(
    run: _FitState, epoch: int, stats: _EpochStats, on_epoch_end: EpochCallback | None
) -> None:
    """Validate, keep the best weights, decide on early stopping and checkpoint the run."""
    val, _ = _evaluate_val(run)
    record = {
        "epoch": epoch,
        "train_loss": stats.loss_sum / stats.seen,
        "train_accuracy": stats.hits / stats.seen,
        **{f"val_{k}": v for k, v in val.items()},
        "lr": float(run.scheduler.get_last_lr()[0]),
        "samples_per_second": stats.seen / max(time.perf_counter() - stats.started, 1e-9),
    }
    run.history.append(record)
    if val["macro_f1"] > run.best_f1:
        run.best_f1, run.best_epoch, run.bad_epochs = val["macro_f1"], epoch, 0
        _atomic_save(_cpu_weights(run.net), run.files.best)
    else:
        run.bad_epochs += 1
    run.finished = run.bad_epochs > run.cfg.early_stopping_patience or epoch == run.cfg.epochs
    _save_checkpoint(run, epoch)
    log.info("epoch %d: %s", epoch, {k: round(v, 4) for k, v in record.items()})
    if on_epoch_end:
        on_epoch_end(epoch, record)
    if run.finished and epoch < run.cfg.epochs:
        log.info("early stopping: no val macro-F1 gain for %d epochs", run.bad_epochs)


def _save_checkpoint(run: _FitState, epoch: int) -> None:
    _atomic_save(
        {
            "fingerprint": run.files.fingerprint,
            "epoch": epoch,
            "net": run.net.state_dict(),
            "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(),
            "rng": _rng_state(),
            "history": run.history,
            "best_f1": run.best_f1,
            "best_epoch": run.best_epoch,
            "bad_epochs": run.bad_epochs,
            "finished": run.finished,
        },
        run.files.state,
    )


def _write_best_bundle(
    run: _FitState, model_path: Path, out_dir: Path
) -> tuple[dict[str, float], dict[str, Any], Path]:
    """Reload the best epoch's weights, pick the out-of-scope threshold on validation and write
    the bundle; returns the validation metrics, the threshold choice and the bundle folder."""
    import torch

    from ml.models.intent.model import save_bundle
    from ml.models.intent.oos import choose_operating_point

    intent = run.params.intent
    run.net.load_state_dict(torch.load(run.files.best, map_location=run.device, weights_only=True))
    val, val_probs = _evaluate_val(run)
    raw_val = [run.data.labels[i] for i in val_probs.argmax(axis=1)]
    oos = choose_operating_point(
        val_probs.max(axis=1),
        run.data.val_true,
        raw_val,
        policy=intent.oos_policy,
        oos_label=intent.oos_label,
        target_precision=intent.oos_target_precision,
        target_recall=intent.oos_target_recall,
        max_in_scope_loss=intent.oos_max_in_scope_loss,
        cost_ratio=intent.oos_cost_ratio,
        min_oos_rows=intent.oos_min_val_rows,
    )
    if oos["warning"]:
        log.warning("out-of-scope threshold: %s", oos["warning"])
    meta = {
        "labels": run.data.labels,
        "threshold": oos["threshold"],
        "oos_policy": oos["policy"],
        "max_length": run.cfg.max_length,
        "oos_label": intent.oos_label,
        "max_text_chars": intent.max_text_chars,
        "batch_size": intent.inference_batch_size,
        "base_model": str(model_path),
        "best_epoch": run.best_epoch,
        "pooling": "mean+l2norm",
    }
    model_dir = out_dir / MODEL_DIR
    if model_dir.exists():
        shutil.rmtree(model_dir)
    save_bundle(run.net, run.tokenizer, model_dir, meta)
    return val, oos, model_dir


def _fit_summary(
    run: _FitState,
    model_dir: Path,
    val: dict[str, float],
    oos: dict[str, Any],
    started: float,
    *,
    resumed: bool,
) -> dict[str, Any]:
    cfg, data = run.cfg, run.data
    return {
        "model_dir": str(model_dir),
        "baseline_file": str(run.files.baseline),
        "labels": data.labels,
        "n_train": len(data.train_df),
        "n_val": len(data.val_df),
        "best_epoch": run.best_epoch,
        "val_macro_f1": val["macro_f1"],
        "val_accuracy": val["accuracy"],
        "val_warm_start_macro_f1": run.history[0]["val_macro_f1"] if cfg.warm_start_head else None,
        "oos": oos,
        "history": run.history,
        "device": str(run.device),
        "bf16": run.bf16,
        "padding": padding_stats(
            data.lengths,
            length_grouped_batches(
                data.lengths, cfg.batch_size, group_batches=cfg.length_group_batches, seed=cfg.seed
            ),
        ),
        "optimizer_steps": int(run.scheduler.last_epoch),
        "train_tokens": run.train_tokens,
        "train_seconds": run.train_seconds,
        "seconds": time.perf_counter() - started,
        "fingerprint": run.files.fingerprint,
        "resumed": resumed,
    }


def _flat_params(params: Params) -> dict[str, Any]:
    flat = {f"train.{k}": v for k, v in params.intent.train.model_dump(mode="json").items()}
    flat.update(
        oos_target_precision=params.intent.oos_target_precision,
        oos_label=params.intent.oos_label,
        seed=params.seed,
    )
    return flat


def train_intent(
    params: Params,
    processed_dir: str | Path,
    out_dir: str | Path,
    *,
    resume: bool | None = None,
    register: bool = True,
) -> dict[str, Any]:
    """Train, log one MLflow run (params, per-epoch metrics, lineage, diagnostics, pyfunc) and
    register the model as a new version of params.mlflow.intent_model_name.

    Writes ``<out_dir>/model`` (the bundle), ``<out_dir>/registration.json`` ({run_id,
    model_uri, version, model_name}) and ``<out_dir>/train_summary.json``.
    """
    from ml.stack.tracking import configure_mlflow, step_run

    processed_dir, out_dir = Path(processed_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    configure_mlflow(params.mlflow, params.mlflow.intent_experiment)
    data: dict[str, str | Path] = {
        s: split_path(processed_dir, s) for s in ("train", "val", "test")
    }
    data["label_map"] = processed_dir / "intent" / "label_map.json"
    with step_run("intent") as run:
        _log_run_inputs(params, data)
        result = fit_intent(
            params, processed_dir, out_dir, resume=resume, on_epoch_end=_log_epoch_metrics
        )
        _log_fit_result(result)
        val_df = _log_val_diagnostics(params, processed_dir, out_dir, result)
        registration = _log_and_register_model(params, run, result, val_df, register)
    return _write_train_outputs(out_dir, result, registration)


def _log_run_inputs(params: Params, data: dict[str, str | Path]) -> None:
    import mlflow

    from ml.stack.tracking import environment_info, lineage_tags

    mlflow.set_tags(lineage_tags(params, data))
    mlflow.set_tag("device", environment_info().get("device", "cpu"))
    mlflow.log_params(_flat_params(params))


def _log_epoch_metrics(epoch: int, record: dict[str, float]) -> None:
    import mlflow

    mlflow.log_metrics({k: v for k, v in record.items() if k != "epoch"}, step=epoch)


def _log_fit_result(result: dict[str, Any]) -> None:
    import mlflow

    mlflow.log_metrics(
        {
            "best_val_macro_f1": result["val_macro_f1"],
            "best_val_accuracy": result["val_accuracy"],
            "best_epoch": result["best_epoch"],
            "oos_threshold": result["oos"]["threshold"],
            "val_rejection_rate": result["oos"]["validation"]["rejection_rate"],
            "train_seconds": result["train_seconds"],
            "pad_fraction": result["padding"]["pad_fraction"],
        }
    )
    mlflow.log_dict({"labels": result["labels"]}, "label_map.json")
    mlflow.log_dict(result["oos"], "oos_threshold.json")


def _log_val_diagnostics(
    params: Params, processed_dir: Path, out_dir: Path, result: dict[str, Any]
) -> pd.DataFrame:
    """Diagnostics of the written bundle on the validation split; returns that split."""
    import mlflow

    from ml.models.intent.diagnostics import write_diagnostics
    from ml.models.intent.model import IntentModel

    labels = result["labels"]
    val_df = load_split(processed_dir, "val", labels)
    model = IntentModel.load(Path(result["model_dir"]))
    probs = model.predict_proba(val_df["text"].tolist())
    diag_dir = out_dir / "diagnostics_val"
    write_diagnostics(
        diag_dir,
        texts=val_df["text"].tolist(),
        y_true=val_df["label"].astype(str).tolist(),
        y_pred=[labels[i] for i in probs.argmax(axis=1)],
        confidence=probs.max(axis=1),
        labels=labels,
        title="validation",
        seed=params.seed,
    )
    mlflow.log_artifacts(str(diag_dir), "diagnostics/val")
    return val_df


def _log_and_register_model(
    params: Params, run: Any, result: dict[str, Any], val_df: pd.DataFrame, register: bool
) -> dict[str, Any]:
    """Log the bundle as a pyfunc (registered when ``register``); returns registration.json."""
    from ml.models.intent.pyfunc import log_intent_pyfunc
    from ml.stack.tracking import record_model_version

    model_name = params.mlflow.intent_model_name
    info = log_intent_pyfunc(
        Path(result["model_dir"]),
        model_name if register else None,
        val_df["text"].head(3).tolist(),
    )
    version = info.registered_model_version
    record_model_version(run, model_name, version)
    return {
        "run_id": run.info.run_id,
        "model_uri": (f"models:/{model_name}/{version}" if version is not None else info.model_uri),
        "version": str(version) if version is not None else None,
        "model_name": model_name,
    }


def _write_train_outputs(
    out_dir: Path, result: dict[str, Any], registration: dict[str, Any]
) -> dict[str, Any]:
    """Write registration.json and train_summary.json; returns the summary (without history)."""
    (out_dir / "registration.json").write_text(json.dumps(registration, indent=2), encoding="utf-8")
    summary = {k: v for k, v in result.items() if k != "history"} | {"registration": registration}
    (out_dir / "train_summary.json").write_text(
        json.dumps(summary | {"history": result["history"]}, indent=2, default=str),
        encoding="utf-8",
    )
    # Training finished and is recorded: the resume state is no longer needed (and is large).
    shutil.rmtree(out_dir / CHECKPOINT_DIR, ignore_errors=True)
    return summary
