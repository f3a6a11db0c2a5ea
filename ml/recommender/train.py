"""Training loop: full or in-batch sampled softmax (logQ-corrected), early stopping on
validation NDCG@10, a checkpoint per epoch that a rerun resumes from."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from ml.core.metrics import metrics_from_ranks, rank_targets, summarize
from ml.core.progress import progress
from ml.encoders import pick_device, resolve_model_path
from ml.recommender.data import RecData, load_recsys, training_pairs
from ml.recommender.features import assign_clusters, encode_items, fit_user_clusters
from ml.recommender.model import Recommender, SeqRecNet, pad_histories

if TYPE_CHECKING:
    from ml.config import Params
    from ml.recommender.config import RecommenderTrainConfig

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
TEXT_CACHE = "text_vectors_cache.npz"
# Bump when SeqRecNet's parameters change, so old checkpoints are not resumed into it.
ARCHITECTURE = "seqrec-gru-textchannel-v2"


def _fingerprint(cfg: RecommenderTrainConfig, data: RecData, vectors: np.ndarray) -> str:
    """What a checkpoint belongs to: resuming with other settings or data would be wrong."""
    ignored = {"epochs", "cpu_threads", "device"}  # do not change what is learned
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


def _fit(
    data: RecData,
    text_vectors: np.ndarray,
    cfg: RecommenderTrainConfig,
    out_dir: Path,
    device: torch.device,
    on_epoch: Any,
) -> tuple[Recommender, dict[str, Any]]:
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    use_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    n_items = data.n_items

    sequences = [list(s) for s in data.train["items"]]
    counts = data.train_counts()
    centroids = fit_user_clusters(sequences, text_vectors, cfg.n_user_clusters, cfg.seed)
    histories, targets = training_pairs(sequences, cfg.max_history)
    if not len(targets):
        raise ValueError("no training pairs: every training sequence has fewer than 2 items")
    clusters = assign_clusters(histories, text_vectors, centroids)
    hist_t, len_t = pad_histories(histories, cfg.max_history, pad=n_items)
    tgt_t = torch.from_numpy(targets)
    clu_t = torch.from_numpy(clusters)

    seen = torch.from_numpy(counts > 0)
    net = SeqRecNet(
        torch.from_numpy(text_vectors), seen, cfg.dim, len(centroids), cfg.dropout, cfg.id_dropout
    )
    net.to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    full = cfg.loss == "full" or (cfg.loss == "auto" and n_items <= cfg.full_softmax_max_items)
    target_freq = np.bincount(targets, minlength=n_items) + 1.0
    log_q = None if full else torch.log(torch.from_numpy(target_freq / target_freq.sum())).float()
    if log_q is not None:
        log_q = log_q.to(device)
    model = Recommender(
        net,
        [str(i) for i in data.items["item_id"]],
        text_vectors,
        centroids,
        cfg.max_history,
        cfg.model_dump(mode="json"),
    )

    fingerprint = _fingerprint(cfg, data, text_vectors)
    state: dict[str, Any] = {
        "epoch": 0,
        "best": -1.0,
        "best_epoch": 0,
        "bad": 0,
        "curves": [],
        "best_state": None,
    }
    ckpt_path = out_dir / CHECKPOINT
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        if ckpt.get("fingerprint") == fingerprint:
            net.load_state_dict(ckpt["net"])
            opt.load_state_dict(ckpt["opt"])
            state = ckpt["state"]
            log.info("resuming from %s after epoch %d", ckpt_path, state["epoch"])
        else:
            log.info("ignoring %s: written for other settings or data", ckpt_path)

    n = len(targets)
    per_epoch = min(n, cfg.max_train_examples or n)
    while state["epoch"] < cfg.epochs and state["bad"] <= cfg.early_stopping_patience:
        epoch = state["epoch"] + 1
        net.train()
        t0 = time.perf_counter()
        order = rng.permutation(n)[:per_epoch]
        total = 0.0
        steps = range(0, per_epoch, cfg.batch_size)
        for start in progress(steps, desc=f"epoch {epoch}", unit="batch", leave=False, logger=log):
            idx = torch.from_numpy(order[start : start + cfg.batch_size])
            lengths = len_t[idx]
            hist = hist_t[idx, : max(1, int(lengths.max()))].to(device)
            tgt = tgt_t[idx].to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                if full:
                    items = net.item_vectors()
                    user = net.user_vectors(hist, lengths, clu_t[idx].to(device), items)
                    loss = _loss(user.float(), tgt, items.float(), None)
                else:
                    # Only the rows this batch touches: the catalog may be huge.
                    uniq = torch.unique(torch.cat([hist.flatten(), tgt]))
                    uniq = uniq[uniq < n_items]
                    local = torch.searchsorted(uniq, hist).clamp(max=len(uniq) - 1)
                    local = torch.where(hist == n_items, len(uniq), local)
                    items = net.item_vectors(uniq)
                    user = net.user_vectors(local, lengths, clu_t[idx].to(device), items)
                    tgt_local = torch.searchsorted(uniq, tgt)
                    loss = _loss(user.float(), tgt, items[tgt_local].float(), log_q)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        seconds = time.perf_counter() - t0
        net.eval()
        ndcg = validation_ndcg(model, data)
        row = {
            "epoch": epoch,
            "train_loss": total / per_epoch,
            "val_ndcg@10": ndcg,
            "epoch_seconds": seconds,
        }
        state["curves"].append(row)
        log.info(
            "epoch %d loss %.4f val ndcg@10 %.4f (%.1fs)", epoch, row["train_loss"], ndcg, seconds
        )
        if ndcg > state["best"]:
            state.update(
                best=ndcg,
                best_epoch=epoch,
                bad=0,
                best_state={k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
            )
        else:
            state["bad"] += 1
        state["epoch"] = epoch
        torch.save(
            {
                "fingerprint": fingerprint,
                "net": net.state_dict(),
                "opt": opt.state_dict(),
                "state": state,
            },
            ckpt_path,
        )
        if on_epoch is not None:
            on_epoch(row)
    if state["best_state"] is not None:
        net.load_state_dict(state["best_state"])
    net.eval()
    summary = {
        "epochs_run": state["epoch"],
        "best_epoch": state["best_epoch"],
        "best_val_ndcg@10": state["best"],
        "curves": state["curves"],
        "n_train_pairs": int(n),
        "n_items": n_items,
        "n_seen_items": int(seen.sum()),
        "loss": "full_softmax" if full else "sampled_softmax_logq",
        "device": str(device),
        "bf16": use_bf16,
    }
    return model, summary


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
