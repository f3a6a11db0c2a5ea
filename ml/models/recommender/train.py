"""Training loop: full or in-batch sampled softmax (logQ-corrected), early stopping on
validation NDCG@10, a checkpoint per epoch that a rerun resumes from."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from ml.core.metrics import metrics_from_ranks, rank_targets, summarize
from ml.core.progress import progress
from ml.models.encoders import pick_device, resolve_model_path
from ml.models.encoders import use_bf16 as bf16_for
from ml.models.recommender.baselines import cooccurrence_counts
from ml.models.recommender.data import RecData, load_recsys, training_pairs
from ml.models.recommender.features import assign_clusters, encode_items, fit_user_clusters
from ml.models.recommender.model import Recommender, SeqRecNet, pad_histories

if TYPE_CHECKING:
    from ml.core.config import Params
    from ml.core.config.recommender import RecommenderTrainConfig

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
TEXT_CACHE = "text_vectors_cache.npz"
# Bump when SeqRecNet's parameters change, so old checkpoints are not resumed into it.
ARCHITECTURE = "seqrec-gru-textchannel-v3"


def _fingerprint(cfg: RecommenderTrainConfig, data: RecData, vectors: np.ndarray) -> str:
    """What a checkpoint belongs to: resuming with other settings or data would be wrong."""
    # Do not change what the network learns (transition weights are chosen after training).
    ignored = {
        "epochs",
        "cpu_threads",
        "device",
        "transition_weights",
        "transition_window",
        "transition_reverse_weight",
    }
    blob = json.dumps(cfg.model_dump(mode="json", exclude=ignored), sort_keys=True)
    h = hashlib.sha256((ARCHITECTURE + blob).encode())
    h.update(str((data.n_items, len(data.train), len(data.val))).encode())
    h.update(np.ascontiguousarray(vectors[: min(len(vectors), 64)]).tobytes())
    return h.hexdigest()[:16]


def validation_ndcg(model: Recommender, data: RecData, k: int = 10, batch: int = 256) -> float:
    """NDCG@k on the val split, full catalog, history excluded (the early-stopping metric)."""
    hist = [list(h) for h in data.val["history"]]
    targets = data.val["target"].to_numpy()
    ranks = np.concatenate(
        [
            rank_targets(
                model.score(hist[s : s + batch]), targets[s : s + batch], hist[s : s + batch], 0
            )[0]
            for s in range(0, len(hist), batch)
        ]
        or [np.zeros(0)]
    )
    return summarize(metrics_from_ranks(ranks, ks=(k,)))[f"ndcg@{k}"]


def _loss(
    user: torch.Tensor,
    targets: torch.Tensor,
    items: torch.Tensor,
    log_q: torch.Tensor | None,
) -> torch.Tensor:
    """Full softmax (``items`` = whole catalog) or in-batch sampled softmax with logQ
    correction (``items`` = the batch's target vectors, row b for example b)."""
    if log_q is None:
        return F.cross_entropy(user @ items.T, targets)
    # The other examples' targets are the negatives; subtracting log q(item) undoes the
    # popularity bias of sampling negatives in proportion to their frequency.
    logits = user @ items.T - log_q[targets][None, :]
    same = targets[:, None] == targets[None, :]
    eye = torch.eye(len(targets), dtype=torch.bool, device=targets.device)
    logits = logits.masked_fill(same & ~eye, float("-inf"))
    return F.cross_entropy(logits, torch.arange(len(targets), device=targets.device))


def fit(
    data: RecData,
    text_vectors: np.ndarray,
    cfg: RecommenderTrainConfig,
    out_dir: str | Path,
    *,
    on_epoch: Any = None,
) -> tuple[Recommender, dict[str, Any]]:
    """Train on precomputed item text vectors; returns the best model (by val NDCG@10)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = pick_device(cfg.device)
    threads = torch.get_num_threads()
    if device.type == "cpu" and cfg.cpu_threads:
        torch.set_num_threads(cfg.cpu_threads)
    try:
        return _fit(data, text_vectors, cfg, out_dir, device, on_epoch)
    finally:
        torch.set_num_threads(threads)


@dataclass
class _Pairs:
    """The training examples as tensors: padded histories (pad = n_items), their lengths, the
    next item to predict, and each history's user cluster."""

    histories: torch.Tensor
    lengths: torch.Tensor
    targets: torch.Tensor
    clusters: torch.Tensor


def _training_pairs(
    data: RecData, text_vectors: np.ndarray, cfg: RecommenderTrainConfig
) -> tuple[np.ndarray, np.ndarray, _Pairs]:
    """(user cluster centroids, targets, the pairs as tensors) from the training sequences."""
    sequences = [list(s) for s in data.train["items"]]
    centroids = fit_user_clusters(sequences, text_vectors, cfg.n_user_clusters, cfg.seed)
    histories, targets = training_pairs(sequences, cfg.max_history)
    if not len(targets):
        raise ValueError("no training pairs: every training sequence has fewer than 2 items")
    clusters = assign_clusters(histories, text_vectors, centroids)
    hist_t, len_t = pad_histories(histories, cfg.max_history, pad=data.n_items)
    pairs = _Pairs(hist_t, len_t, torch.from_numpy(targets), torch.from_numpy(clusters))
    return centroids, targets, pairs


def _sampling_log_q(targets: np.ndarray, n_items: int, device: torch.device) -> torch.Tensor:
    """log q(item): each item's (add-one smoothed) share of the training targets, the
    probability the in-batch sampled softmax draws it as a negative."""
    target_freq = np.bincount(targets, minlength=n_items) + 1.0
    return torch.log(torch.from_numpy(target_freq / target_freq.sum())).float().to(device)


def _new_state() -> dict[str, Any]:
    """Training progress before the first epoch (what a checkpoint stores to resume from)."""
    return {
        "epoch": 0,
        "best": -1.0,
        "best_epoch": 0,
        "bad": 0,
        "curves": [],
        "best_state": None,
    }


def _resume(
    ckpt_path: Path,
    fingerprint: str,
    net: SeqRecNet,
    opt: torch.optim.Optimizer,
    device: torch.device,
) -> dict[str, Any]:
    """Load net, optimiser and progress from a checkpoint of the same run; else a fresh state."""
    if not ckpt_path.exists():
        return _new_state()
    ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
    if ckpt.get("fingerprint") != fingerprint:
        log.info("ignoring %s: written for other settings or data", ckpt_path)
        return _new_state()
    net.load_state_dict(ckpt["net"])
    opt.load_state_dict(ckpt["opt"])
    state: dict[str, Any] = ckpt["state"]
    log.info("resuming from %s after epoch %d", ckpt_path, state["epoch"])
    return state


@dataclass
class _Trainer:
    """One optimisation step or epoch of ``net``; ``log_q`` None means full softmax over the
    catalogue, else the in-batch sampled softmax with logQ correction."""

    net: SeqRecNet
    opt: torch.optim.Optimizer
    pairs: _Pairs
    n_items: int
    log_q: torch.Tensor | None
    device: torch.device
    use_bf16: bool

    def batch_loss(self, idx: torch.Tensor) -> torch.Tensor:
        """The loss of the examples ``idx`` (forward pass only)."""
        net, pairs, device, n_items = self.net, self.pairs, self.device, self.n_items
        lengths = pairs.lengths[idx]
        hist = pairs.histories[idx, : max(1, int(lengths.max()))].to(device)
        tgt = pairs.targets[idx].to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.use_bf16):
            if self.log_q is None:
                items = net.item_vectors()
                user = net.user_vectors(hist, lengths, pairs.clusters[idx].to(device), items)
                return _loss(user.float(), tgt, items.float(), None)
            # Only the rows this batch touches: the catalog may be huge.
            uniq = torch.unique(torch.cat([hist.flatten(), tgt]))
            uniq = uniq[uniq < n_items]
            local = torch.searchsorted(uniq, hist).clamp(max=len(uniq) - 1)
            local = torch.where(hist == n_items, len(uniq), local)
            items = net.item_vectors(uniq)
            user = net.user_vectors(local, lengths, pairs.clusters[idx].to(device), items)
            tgt_local = torch.searchsorted(uniq, tgt)
            return _loss(user.float(), tgt, items[tgt_local].float(), self.log_q)

    def train_epoch(self, order: np.ndarray, epoch: int, batch_size: int) -> float:
        """Train on the examples ``order`` in batches; returns the example-weighted loss sum."""
        total = 0.0
        steps = range(0, len(order), batch_size)
        for start in progress(steps, desc=f"epoch {epoch}", unit="batch", leave=False, logger=log):
            idx = torch.from_numpy(order[start : start + batch_size])
            loss = self.batch_loss(idx)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            total += float(loss.detach()) * len(idx)
        return total


def _record_epoch(state: dict[str, Any], row: dict[str, Any], net: SeqRecNet) -> None:
    """Add an epoch's curve row; keep the net's weights if validation NDCG improved."""
    state["curves"].append(row)
    ndcg = row["val_ndcg@10"]
    log.info(
        "epoch %d loss %.4f val ndcg@10 %.4f (%.1fs)",
        row["epoch"],
        row["train_loss"],
        ndcg,
        row["epoch_seconds"],
    )
    if ndcg > state["best"]:
        state.update(
            best=ndcg,
            best_epoch=row["epoch"],
            bad=0,
            best_state={k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
        )
    else:
        state["bad"] += 1
    state["epoch"] = row["epoch"]


def _save_checkpoint(
    ckpt_path: Path,
    fingerprint: str,
    net: SeqRecNet,
    opt: torch.optim.Optimizer,
    state: dict[str, Any],
) -> None:
    """Everything a rerun needs to resume after this epoch (see :func:`_resume`)."""
    torch.save(
        {
            "fingerprint": fingerprint,
            "net": net.state_dict(),
            "opt": opt.state_dict(),
            "state": state,
        },
        ckpt_path,
    )


def _summary(
    state: dict[str, Any], trainer: _Trainer, n_train_pairs: int, seen: torch.Tensor
) -> dict[str, Any]:
    """What :func:`fit` reports besides the model: progress, curves, sizes, loss and device."""
    return {
        "epochs_run": state["epoch"],
        "best_epoch": state["best_epoch"],
        "best_val_ndcg@10": state["best"],
        "curves": state["curves"],
        "n_train_pairs": int(n_train_pairs),
        "n_items": trainer.n_items,
        "n_seen_items": int(seen.sum()),
        "loss": "full_softmax" if trainer.log_q is None else "sampled_softmax_logq",
        "device": str(trainer.device),
        "bf16": trainer.use_bf16,
    }


def _fit(
    data: RecData,
    text_vectors: np.ndarray,
    cfg: RecommenderTrainConfig,
    out_dir: Path,
    device: torch.device,
    on_epoch: Any,
) -> tuple[Recommender, dict[str, Any]]:
    # Seed before anything draws: the net's initial weights and dropout use torch's RNG, the
    # epoch order this generator; a rerun with the same seed is bit-identical.
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    use_bf16 = bf16_for(device, cfg.precision)
    n_items = data.n_items
    counts = data.train_counts()
    centroids, targets, pairs = _training_pairs(data, text_vectors, cfg)

    seen = torch.from_numpy(counts > 0)
    net = SeqRecNet(
        torch.from_numpy(text_vectors),
        seen,
        cfg.dim,
        len(centroids),
        cfg.dropout,
        cfg.id_dropout,
        cfg.text_adapter_rank,
    )
    net.to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    full = cfg.loss == "full" or (cfg.loss == "auto" and n_items <= cfg.full_softmax_max_items)
    log_q = None if full else _sampling_log_q(targets, n_items, device)
    trainer = _Trainer(net, opt, pairs, n_items, log_q, device, use_bf16)
    model = Recommender(
        net,
        [str(i) for i in data.items["item_id"]],
        text_vectors,
        centroids,
        cfg.max_history,
        cfg.model_dump(mode="json"),
    )

    fingerprint = _fingerprint(cfg, data, text_vectors)
    ckpt_path = out_dir / CHECKPOINT
    state = _resume(ckpt_path, fingerprint, net, opt, device)
    n = len(targets)
    per_epoch = min(n, cfg.max_train_examples or n)
    while state["epoch"] < cfg.epochs and state["bad"] <= cfg.early_stopping_patience:
        epoch = state["epoch"] + 1
        net.train()
        t0 = time.perf_counter()
        total = trainer.train_epoch(rng.permutation(n)[:per_epoch], epoch, cfg.batch_size)
        seconds = time.perf_counter() - t0
        net.eval()
        row = {
            "epoch": epoch,
            "train_loss": total / per_epoch,
            "val_ndcg@10": validation_ndcg(model, data),
            "epoch_seconds": seconds,
        }
        _record_epoch(state, row, net)
        _save_checkpoint(ckpt_path, fingerprint, net, opt, state)
        if on_epoch is not None:
            on_epoch(row)
    if state["best_state"] is not None:
        net.load_state_dict(state["best_state"])
    net.eval()
    summary = _summary(state, trainer, n, seen)
    summary["transition_channel"] = choose_transition_weight(
        model,
        data,
        cfg.transition_weights,
        window=cfg.transition_window,
        reverse_weight=cfg.transition_reverse_weight,
    )
    return model, summary


def choose_transition_weight(
    model: Recommender,
    data: RecData,
    weights: list[float],
    *,
    window: int = 1,
    reverse_weight: float = 0.0,
) -> dict[str, Any]:
    """Give ``model`` the training sequences' co-occurrence counts
    (:func:`~ml.models.recommender.baselines.cooccurrence_counts` with ``window`` and
    ``reverse_weight``) and the weight among ``weights`` with the best validation NDCG@10
    (ties: the smaller weight); 0 or no weights = channel off."""
    candidates = sorted({0.0, *map(float, weights)})
    settings = {"window": window, "reverse_weight": reverse_weight}
    if candidates == [0.0]:
        model.transitions, model.transition_weight = None, 0.0
        return {"weight": 0.0, **settings, "val_ndcg@10": {}}
    model.transitions = cooccurrence_counts(
        [list(s) for s in data.train["items"]],
        data.n_items,
        window=window,
        reverse_weight=reverse_weight,
    )
    val: dict[str, float] = {}
    for weight in candidates:
        model.transition_weight = weight
        val[str(weight)] = validation_ndcg(model, data)
    best = max(candidates, key=lambda w: (val[str(w)], -w))
    model.transition_weight = best
    if best == 0.0:
        model.transitions = None
    log.info("bought-together weight %s (validation NDCG@10 by weight: %s)", best, val)
    return {"weight": best, **settings, "val_ndcg@10": val}


def train_recommender(params: Params, processed_dir: str | Path, out_dir: str | Path) -> dict:
    """Encode item texts (cached), train, save the best model folder to ``out_dir``.

    Returns metadata: best validation NDCG@10, curves, sizes, the model folder.
    """
    cfg = params.recommender.train
    out_dir = Path(out_dir)
    data = load_recsys(processed_dir)
    text_model = resolve_model_path(cfg.text_model_path)
    vectors = encode_items(data.items, text_model, out_dir / TEXT_CACHE)
    model, summary = fit(data, vectors, cfg, out_dir)
    model.config["text_model_path"] = str(text_model)
    model.save(out_dir)
    summary["model_dir"] = str(out_dir)
    summary["text_model"] = str(text_model)
    (out_dir / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
