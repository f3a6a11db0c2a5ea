"""Recommender benchmark: training time per epoch, full-catalog top-K throughput and memory at
several catalog sizes, against a naive per-user Python loop in the same run.

Each catalog size runs in a fresh subprocess so its peak RSS is its own. Item "text vectors"
are random (384-d, like MiniLM): the cost does not depend on their content.

    .venv/bin/python bench/recommender_bench.py                   # 2k / 20k / 200k items
    .venv/bin/python bench/recommender_bench.py --sizes 2000 --users 500
"""

from __future__ import annotations

import argparse
import heapq
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def _world(n_items: int, n_users: int, seed: int = 0):  # type: ignore[no-untyped-def]
    import pandas as pd

    from ml.models.recommender.data import RecData

    rng = np.random.default_rng(seed)
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.9
    pop /= pop.sum()
    seqs = [rng.choice(n_items, int(rng.integers(5, 15)), p=pop).tolist() for _ in range(n_users)]
    items = pd.DataFrame(
        {
            "item_idx": np.arange(n_items),
            "item_id": [f"I{i}" for i in range(n_items)],
            "category": (np.arange(n_items) % 50).astype(str),
        }
    )
    train = pd.DataFrame({"user_idx": np.arange(n_users), "items": [s[:-2] for s in seqs]})
    val = pd.DataFrame(
        {
            "user_idx": np.arange(n_users),
            "history": [s[:-2] for s in seqs],
            "target": [s[-2] for s in seqs],
        }
    )
    test = pd.DataFrame(
        {
            "user_idx": np.arange(n_users),
            "history": [s[:-1] for s in seqs],
            "target": [s[-1] for s in seqs],
        }
    )
    return RecData(items, pd.DataFrame({"user_idx": np.arange(n_users)}), train, val, test)


def naive_top_k(model, histories, k: int) -> list[list[int]]:  # type: ignore[no-untyped-def]
    """The loop a first version would write: one user at a time, one item at a time."""
    items = model.net.item_vectors().detach().numpy()
    out = []
    for hist in histories:
        user = model.user_vectors([hist]).numpy()[0]
        owned = set(hist)
        scores = ((float(np.dot(user, items[i])), i) for i in range(len(items)) if i not in owned)
        out.append([i for _, i in heapq.nlargest(k, scores)])
    return out


def run_one(n_items: int, n_users: int, k: int, naive_users: int) -> dict:
    import torch

    from ml.core.config.recommender import RecommenderTrainConfig
    from ml.models.recommender.train import fit

    data = _world(n_items, n_users)
    vectors = np.random.default_rng(1).normal(size=(n_items, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    cfg = RecommenderTrainConfig(epochs=1, dim=64, n_user_clusters=8, batch_size=256)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        model, summary = fit(data, vectors, cfg, tmp)
        fit_s = time.perf_counter() - t0
    histories = [list(h) for h in data.test["history"]]
    torch.set_num_threads(1)  # same single thread for both scorers: a fair comparison
    model.top_k(histories[:64], k)  # warm-up
    t0 = time.perf_counter()
    top, _ = model.top_k(histories, k, batch_size=256)
    batched_s = time.perf_counter() - t0
    subset = histories[:naive_users]
    t0 = time.perf_counter()
    naive = naive_top_k(model, subset, k)
    naive_s = time.perf_counter() - t0
    agree = float(
        np.mean(
            [
                len(set(a) & set(b.tolist())) / k
                for a, b in zip(naive, top[: len(subset)], strict=True)
            ]
        )
    )
    return {
        "n_items": n_items,
        "n_users": n_users,
        "k": k,
        "loss": summary["loss"],
        "train_pairs": summary["n_train_pairs"],
        "epoch_seconds": summary["curves"][0]["epoch_seconds"],
        "fit_seconds_incl_validation": fit_s,
        "batched_users_per_s": n_users / batched_s,
        "naive_users_per_s": len(subset) / naive_s,
        "naive_users_timed": len(subset),
        "speedup": (n_users / batched_s) / (len(subset) / naive_s),
        "naive_top_k_agreement": agree,
        # Scored item vectors: learned part (dim) + raw text channel (384).
        "item_matrix_mb": n_items * (cfg.dim + vectors.shape[1]) * 4 / 2**20,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20_000, 200_000])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--naive-users", type=int, default=20)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.users, args.k, args.naive_users)))
        return
    rows = []
    for size in args.sizes:
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one",
                str(size),
                "--users",
                str(args.users),
                "--k",
                str(args.k),
                "--naive-users",
                str(args.naive_users),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    header = (
        f"{'items':>8} {'loss':>22} {'epoch s':>8} {'batched u/s':>12} {'naive u/s':>10} "
        f"{'speedup':>8} {'agree':>6} {'RSS MB':>7}"
    )
    print(header)
    for r in rows:
        print(
            f"{r['n_items']:>8} {r['loss']:>22} {r['epoch_seconds']:>8.2f} "
            f"{r['batched_users_per_s']:>12.0f} {r['naive_users_per_s']:>10.1f} "
            f"{r['speedup']:>8.0f} {r['naive_top_k_agreement']:>6.2f} {r['peak_rss_mb']:>7.0f}"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "recommender_bench.json"
    out.write_text(json.dumps({"machine": platform.platform(), "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
