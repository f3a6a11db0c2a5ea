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
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ml.intent import baseline as base
from ml.intent.data import (
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

    from ml.config import Params

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
    from ml.tracking import data_fingerprint

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


def _optimizer(net: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    import torch

    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, p in net.named_parameters():
        # Standard practice: no weight decay on biases and LayerNorm weights.
        (no_decay if p.ndim < 2 or "LayerNorm" in name else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    try:
        # One fused kernel per step instead of a loop over ~100 parameter tensors.
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, lr=lr)


def _atomic_save(obj: Any, path: Path) -> None:
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


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
    import torch
    from transformers import get_linear_schedule_with_warmup

    from ml.core.metrics import classification_metrics
    from ml.core.progress import progress
    from ml.encoders import pick_device, resolve_model_path
    from ml.intent.model import autocast, build_net, embed_texts, predict_proba, save_bundle
    from ml.intent.oos import choose_threshold

    cfg = params.intent.train
    processed_dir, out_dir = Path(processed_dir), Path(out_dir)
    started = time.perf_counter()
    labels = load_labels(processed_dir)
    train_df = _subsample(
        load_split(processed_dir, "train", labels), cfg.max_train_samples, cfg.seed
    )
    val_df = load_split(processed_dir, "val", labels)
    model_path = resolve_model_path(cfg.model_path)
    device = pick_device()
    set_seeds(cfg.seed)
    net, tokenizer = build_net(model_path, len(labels), cfg.dropout)
    net.to(device)
    pad_id = tokenizer.pad_token_id or 0

    train_ids = tokenize(tokenizer, train_df["text"].tolist(), cfg.max_length)
    lengths = [len(x) for x in train_ids]
    y_train = torch.tensor(train_df["y"].to_numpy(), dtype=torch.long)
    val_texts, val_true = val_df["text"].tolist(), val_df["label"].astype(str).tolist()

    def evaluate_val() -> tuple[dict[str, float], np.ndarray]:
        probs = predict_proba(
            net,
            tokenizer,
            val_texts,
            max_length=cfg.max_length,
            batch_size=params.intent.inference_batch_size,
        )
        pred = [labels[i] for i in probs.argmax(axis=1)]
        metrics = classification_metrics(val_true, pred)
        picked = probs[np.arange(len(probs)), val_df["y"].to_numpy()]
        metrics["loss"] = float(-np.log(np.clip(picked, 1e-12, None)).mean())
        return metrics, probs

    ckpt_dir = out_dir / CHECKPOINT_DIR
    state_file, best_file = ckpt_dir / "state.pt", ckpt_dir / "best.pt"
    fingerprint = run_fingerprint(params, processed_dir, labels)
    state: dict[str, Any] | None = None
    if (cfg.resume if resume is None else resume) and state_file.is_file():
        state = torch.load(state_file, map_location=device, weights_only=False)
        if state.get("fingerprint") != fingerprint:
            log.warning("ignoring %s: written for other settings or data", state_file)
            state = None
    baseline_file = out_dir / "baseline_lr.npz"

    # Frozen-encoder + logistic-regression baseline; also the head's starting point.
    if state is None or not baseline_file.is_file():
        emb = embed_texts(
            net,
            tokenizer,
            train_df["text"].tolist(),
            max_length=cfg.max_length,
            batch_size=params.intent.inference_batch_size,
        )
        coef, intercept = base.fit_logistic_head(
            emb, train_df["y"].to_numpy(), len(labels), c=cfg.baseline_c, seed=cfg.seed
        )
        base.save_linear(baseline_file, coef, intercept, labels)
    coef, intercept, _ = base.load_linear(baseline_file)

    optimizer = _optimizer(net, cfg.learning_rate, cfg.weight_decay)
    n_batches = -(-len(train_ids) // cfg.batch_size)
    total_steps = steps_per_epoch(n_batches, cfg.grad_accum_steps) * cfg.epochs
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(cfg.warmup_fraction * total_steps), total_steps
    )
    history: list[dict[str, float]] = []
    if state is not None:
        net.load_state_dict(state["net"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
        history = state["history"]
        start_epoch, best_f1, best_epoch = state["epoch"] + 1, state["best_f1"], state["best_epoch"]
        bad_epochs, finished = state["bad_epochs"], state["finished"]
        log.info("resuming from %s after epoch %d", state_file, state["epoch"])
    else:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        start_epoch, best_epoch, bad_epochs, finished = 1, 0, 0, False
        if cfg.warm_start_head:
            from ml.intent.model import set_head_from_linear

            set_head_from_linear(net, coef, intercept)
            warm, _ = evaluate_val()
            best_f1 = warm["macro_f1"]
            history.append({"epoch": 0, **{f"val_{k}": v for k, v in warm.items()}})
            if on_epoch_end:
                on_epoch_end(0, history[-1])
        else:
            best_f1 = -1.0
        _atomic_save({k: v.detach().cpu() for k, v in net.state_dict().items()}, best_file)

    loss_fn = torch.nn.CrossEntropyLoss()
    train_tokens = 0
    train_seconds = 0.0
    for epoch in range(start_epoch, cfg.epochs + 1):
        if finished:
            break
        net.train()
        # Batch order depends only on (seed, epoch), so a resumed run sees the same batches.
        batches = length_grouped_batches(
            lengths, cfg.batch_size, group_batches=cfg.length_group_batches, seed=cfg.seed + epoch
        )
        loss_sum, hits, seen = 0.0, 0, 0
        t0 = time.perf_counter()
        bar = progress(batches, desc=f"epoch {epoch}/{cfg.epochs}", unit="batch", logger=log)
        for step, batch in enumerate(bar, start=1):
            input_ids, mask = pad_batch([train_ids[i] for i in batch], pad_id)
            input_ids, mask, target = (
                input_ids.to(device),
                mask.to(device),
                y_train[batch].to(device),
            )
            with autocast(device):
                logits = net(input_ids, mask)
            loss = loss_fn(logits.float(), target)
            (loss / cfg.grad_accum_steps).backward()
            if step % cfg.grad_accum_steps == 0 or step == len(batches):
                torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            loss_sum += loss.item() * len(batch)
            hits += int((logits.argmax(dim=-1) == target).sum())
            seen += len(batch)
            train_tokens += int(mask.sum())
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}")
        train_seconds += time.perf_counter() - t0
        val, _ = evaluate_val()
        record = {
            "epoch": epoch,
            "train_loss": loss_sum / seen,
            "train_accuracy": hits / seen,
            **{f"val_{k}": v for k, v in val.items()},
            "lr": float(scheduler.get_last_lr()[0]),
            "samples_per_second": seen / max(time.perf_counter() - t0, 1e-9),
        }
        history.append(record)
        if val["macro_f1"] > best_f1:
            best_f1, best_epoch, bad_epochs = val["macro_f1"], epoch, 0
            _atomic_save({k: v.detach().cpu() for k, v in net.state_dict().items()}, best_file)
        else:
            bad_epochs += 1
        finished = bad_epochs > cfg.early_stopping_patience or epoch == cfg.epochs
        _atomic_save(
            {
                "fingerprint": fingerprint,
                "epoch": epoch,
                "net": net.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": _rng_state(),
                "history": history,
                "best_f1": best_f1,
                "best_epoch": best_epoch,
                "bad_epochs": bad_epochs,
                "finished": finished,
            },
            state_file,
        )
        log.info("epoch %d: %s", epoch, {k: round(v, 4) for k, v in record.items()})
        if on_epoch_end:
            on_epoch_end(epoch, record)
        if finished and epoch < cfg.epochs:
            log.info("early stopping: no val macro-F1 gain for %d epochs", bad_epochs)

    net.load_state_dict(torch.load(best_file, map_location=device, weights_only=True))
    val, val_probs = evaluate_val()
    raw_val = [labels[i] for i in val_probs.argmax(axis=1)]
    oos = choose_threshold(
        val_probs.max(axis=1),
        val_true,
        raw_val,
        target_precision=params.intent.oos_target_precision,
        oos_label=params.intent.oos_label,
    )
    meta = {
        "labels": labels,
        "threshold": oos["threshold"],
        "max_length": cfg.max_length,
        "oos_label": params.intent.oos_label,
        "max_text_chars": params.intent.max_text_chars,
        "batch_size": params.intent.inference_batch_size,
        "base_model": str(model_path),
        "best_epoch": best_epoch,
        "pooling": "mean+l2norm",
    }
    model_dir = out_dir / MODEL_DIR
    if model_dir.exists():
        shutil.rmtree(model_dir)
    save_bundle(net, tokenizer, model_dir, meta)
    return {
        "model_dir": str(model_dir),
        "baseline_file": str(baseline_file),
        "labels": labels,
        "n_train": len(train_df),
        "n_val": len(val_df),
        "best_epoch": best_epoch,
        "val_macro_f1": val["macro_f1"],
        "val_accuracy": val["accuracy"],
        "val_warm_start_macro_f1": history[0]["val_macro_f1"] if cfg.warm_start_head else None,
        "oos": oos,
        "history": history,
        "device": str(device),
        "padding": padding_stats(
            lengths,
            length_grouped_batches(
                lengths, cfg.batch_size, group_batches=cfg.length_group_batches, seed=cfg.seed
            ),
        ),
        "optimizer_steps": int(scheduler.last_epoch),
        "train_tokens": train_tokens,
        "train_seconds": train_seconds,
        "seconds": time.perf_counter() - started,
        "fingerprint": fingerprint,
        "resumed": state is not None,
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
    import mlflow

    from ml.intent.diagnostics import write_diagnostics
    from ml.intent.model import IntentModel
    from ml.intent.pyfunc import log_intent_pyfunc
    from ml.tracking import (
        configure_mlflow,
        environment_info,
        lineage_tags,
        record_model_version,
        step_run,
    )

    processed_dir, out_dir = Path(processed_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    configure_mlflow(params.mlflow, params.mlflow.intent_experiment)
    data: dict[str, str | Path] = {
        s: split_path(processed_dir, s) for s in ("train", "val", "test")
    }
    data["label_map"] = processed_dir / "intent" / "label_map.json"
    with step_run("intent") as run:
        mlflow.set_tags(lineage_tags(params, data))
        mlflow.set_tag("device", environment_info().get("device", "cpu"))
        mlflow.log_params(_flat_params(params))

        def log_epoch(epoch: int, record: dict[str, float]) -> None:
            mlflow.log_metrics({k: v for k, v in record.items() if k != "epoch"}, step=epoch)

        result = fit_intent(params, processed_dir, out_dir, resume=resume, on_epoch_end=log_epoch)
        model_dir = Path(result["model_dir"])
        mlflow.log_metrics(
            {
                "best_val_macro_f1": result["val_macro_f1"],
                "best_val_accuracy": result["val_accuracy"],
                "best_epoch": result["best_epoch"],
                "oos_threshold": result["oos"]["threshold"],
                "val_rejection_rate": result["oos"]["rejection_rate"],
                "train_seconds": result["train_seconds"],
                "pad_fraction": result["padding"]["pad_fraction"],
            }
        )
        mlflow.log_dict({"labels": result["labels"]}, "label_map.json")
        mlflow.log_dict(result["oos"], "oos_threshold.json")

        labels = result["labels"]
        val_df = load_split(processed_dir, "val", labels)
        model = IntentModel.load(model_dir)
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

        info = log_intent_pyfunc(
            model_dir,
            params.mlflow.intent_model_name if register else None,
            val_df["text"].head(3).tolist(),
        )
        version = info.registered_model_version
        record_model_version(run, params.mlflow.intent_model_name, version)
        registration = {
            "run_id": run.info.run_id,
            "model_uri": (
                f"models:/{params.mlflow.intent_model_name}/{version}"
                if version is not None
                else info.model_uri
            ),
            "version": str(version) if version is not None else None,
            "model_name": params.mlflow.intent_model_name,
        }
    (out_dir / "registration.json").write_text(json.dumps(registration, indent=2), encoding="utf-8")
    summary = {k: v for k, v in result.items() if k != "history"} | {"registration": registration}
    (out_dir / "train_summary.json").write_text(
        json.dumps(summary | {"history": result["history"]}, indent=2, default=str),
        encoding="utf-8",
    )
    # Training finished and is recorded: the resume state is no longer needed (and is large).
    shutil.rmtree(out_dir / CHECKPOINT_DIR, ignore_errors=True)
    return summary
