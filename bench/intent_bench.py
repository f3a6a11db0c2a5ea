"""Intent fine-tuning and inference benchmark.

Training throughput (samples/s) and peak memory on the same model, data, batch size and
epochs for:
  (a) naive    a plain loop whose Dataset tokenises each example to max_length=128 in
               __getitem__ (every batch is 128 tokens wide, re-tokenised every epoch);
  (b) trainer  HF Trainer + DataCollatorWithPadding (dynamic padding, random batches);
  (c) ours     ml.intent.train.fit_intent (tokenise once, length-grouped dynamic padding).
Each runs in its own process so peak memory (max RSS, or CUDA max allocated) is its own.

Inference with the model from (c): batch throughput and single-utterance p50/p95 latency,
fp32 vs dynamic int8 quantisation of the Linear layers, with the accuracy difference.

    .venv/bin/python bench/intent_bench.py --n-train 512 --epochs 1 --batch-size 32

Data: a stratified sample of the real Bitext CSV in ../shared/data (varied lengths, 27 intents).
Prints one table and writes bench/results/intent_bench.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

BITEXT = (
    ROOT.parent / "shared" / "data" / "bitext_customer_support" / "bitext_customer_support_20k.csv"
)


def write_data(folder: Path, n_train: int, n_test: int, seed: int) -> list[str]:
    """Stratified Bitext sample in the processed layout (train/val/test + label_map)."""
    from sklearn.model_selection import train_test_split

    if not BITEXT.is_file():
        raise SystemExit(f"benchmark data {BITEXT} is missing")
    raw = pd.read_csv(BITEXT, encoding="utf-8-sig")
    n_val = max(n_test // 2, 27)
    sample, _ = train_test_split(
        raw, train_size=n_train + n_val + n_test, stratify=raw["intent"], random_state=seed
    )
    frame = pd.DataFrame(
        {
            "example_id": [f"b{i}" for i in range(len(sample))],
            "text": sample["utterance"].astype(str).to_numpy(),
            "label": sample["intent"].to_numpy(),
        }
    )
    # The sample is stratified; within it a plain shuffled cut (rare intents have 1-2 rows).
    frame = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    train, val, test = (
        frame.iloc[:n_train],
        frame.iloc[n_train : n_train + n_val],
        frame.iloc[n_train + n_val :],
    )
    (folder / "intent").mkdir(parents=True, exist_ok=True)
    for name, part in (("train", train), ("val", val), ("test", test)):
        part.to_parquet(folder / "intent" / f"{name}.parquet", index=False)
    labels = sorted(frame["label"].unique())
    (folder / "intent" / "label_map.json").write_text(json.dumps({"labels": labels}))
    return labels


def _peak_memory_mb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _train_frame(folder: Path) -> tuple[pd.DataFrame, list[str]]:
    from ml.intent.data import load_labels, load_split

    labels = load_labels(folder)
    return load_split(folder, "train", labels), labels


def run_naive(folder: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    import torch
    from torch.utils.data import DataLoader, Dataset

    from ml.encoders import resolve_model_path
    from ml.intent.model import build_net

    torch.manual_seed(cfg["seed"])
    df, labels = _train_frame(folder)
    net, tok = build_net(resolve_model_path(cfg["model"]), len(labels), 0.1)

    class Naive(Dataset):  # type: ignore[type-arg]
        def __len__(self) -> int:
            return len(df)

        def __getitem__(self, i: int) -> dict[str, Any]:
            enc = tok(
                df["text"].iloc[i],
                padding="max_length",
                truncation=True,
                max_length=128,
                return_tensors="pt",
            )
            return {
                "input_ids": enc["input_ids"][0],
                "attention_mask": enc["attention_mask"][0],
                "labels": torch.tensor(int(df["y"].iloc[i])),
            }

    loader = DataLoader(Naive(), batch_size=cfg["batch_size"], shuffle=True)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg["lr"])
    net.train()
    seen, start = 0, time.perf_counter()
    for _ in range(cfg["epochs"]):
        for batch in loader:
            loss = torch.nn.functional.cross_entropy(
                net(batch["input_ids"], batch["attention_mask"]), batch["labels"]
            )
            loss.backward()
            opt.step()
            opt.zero_grad()
            seen += len(batch["labels"])
    seconds = time.perf_counter() - start
    return {"samples_per_second": seen / seconds, "seconds": seconds, "samples": seen}


def run_trainer(folder: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    import torch
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    from ml.encoders import resolve_model_path
    from ml.intent.model import build_net

    torch.manual_seed(cfg["seed"])
    df, labels = _train_frame(folder)
    net, tok = build_net(resolve_model_path(cfg["model"]), len(labels), 0.1)

    class WithLoss(torch.nn.Module):
        """Trainer wants forward(**batch) -> {"loss", "logits"}."""

        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, input_ids: Any, attention_mask: Any, labels: Any = None) -> Any:
            logits = self.net(input_ids, attention_mask)
            out = {"logits": logits}
            if labels is not None:
                out["loss"] = torch.nn.functional.cross_entropy(logits, labels)
            return out

    enc = tok(df["text"].tolist(), truncation=True, max_length=cfg["max_length"])
    rows = [
        {"input_ids": ids, "attention_mask": m, "labels": int(y)}
        for ids, m, y in zip(enc["input_ids"], enc["attention_mask"], df["y"], strict=True)
    ]
    args = TrainingArguments(
        output_dir=str(folder / "trainer_out"),
        per_device_train_batch_size=cfg["batch_size"],
        num_train_epochs=cfg["epochs"],
        learning_rate=cfg["lr"],
        save_strategy="no",
        report_to="none",
        logging_strategy="no",
        disable_tqdm=True,
        seed=cfg["seed"],
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
    )
    trainer = Trainer(
        model=WithLoss(), args=args, train_dataset=rows, data_collator=DataCollatorWithPadding(tok)
    )
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    seen = len(rows) * cfg["epochs"]
    return {"samples_per_second": seen / seconds, "seconds": seconds, "samples": seen}


def run_ours(folder: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    from ml.config import load_params
    from ml.intent.train import fit_intent

    params = load_params(
        folder / "none.yaml",
        {
            "intent.train.model_path": cfg["model"],
            "intent.train.epochs": cfg["epochs"],
            "intent.train.batch_size": cfg["batch_size"],
            "intent.train.learning_rate": cfg["lr"],
            "intent.train.max_length": cfg["max_length"],
            "intent.train.seed": cfg["seed"],
            "intent.train.early_stopping_patience": 100,
            "intent.train.resume": False,
        },
    )
    result = fit_intent(params, folder, folder / "ours")
    epochs = [h for h in result["history"] if h["epoch"] >= 1]
    seen = len(epochs) * result["n_train"]
    return {
        "samples_per_second": seen / result["train_seconds"],
        "seconds": result["train_seconds"],
        "samples": seen,
        "pad_fraction": result["padding"]["pad_fraction"],
        "model_dir": result["model_dir"],
    }


RUNNERS = {"naive": run_naive, "trainer": run_trainer, "ours": run_ours}


def padded_tokens(folder: Path, cfg: dict[str, Any]) -> dict[str, int]:
    """Token positions each loop pushes through the model per epoch (contention-free work
    measure): naive pads all to 128, Trainer pads random batches, ours length-grouped ones."""
    from transformers import AutoTokenizer

    from ml.encoders import resolve_model_path
    from ml.intent.data import length_grouped_batches, padding_stats

    df, _ = _train_frame(folder)
    tok = AutoTokenizer.from_pretrained(resolve_model_path(cfg["model"]))
    ids = tok(df["text"].tolist(), truncation=True, max_length=cfg["max_length"])["input_ids"]
    lengths = [len(x) for x in ids]
    order = np.random.default_rng(cfg["seed"]).permutation(len(lengths)).tolist()
    bs = cfg["batch_size"]
    random_batches = [order[i : i + bs] for i in range(0, len(order), bs)]
    grouped = length_grouped_batches(lengths, bs, group_batches=50, seed=cfg["seed"])
    return {
        "naive": 128 * len(lengths),
        "trainer": padding_stats(lengths, random_batches)["padded_tokens"],
        "ours": padding_stats(lengths, grouped)["padded_tokens"],
        "real": int(sum(lengths)),
    }


def _child(name: str, folder: str, cfg: dict[str, Any], queue: Any) -> None:
    import torch

    torch.set_num_threads(cfg["threads"])
    result = RUNNERS[name](Path(folder), cfg)
    result["peak_memory_mb"] = _peak_memory_mb()
    queue.put(result)


def run_isolated(name: str, folder: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(name, str(folder), cfg, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def bench_inference(model_dir: Path, folder: Path, n_single: int) -> dict[str, Any]:
    import torch

    from ml.intent.data import load_labels, load_split
    from ml.intent.model import IntentModel

    labels = load_labels(folder)
    test = load_split(folder, "test", labels)
    texts, y = test["text"].tolist(), test["y"].to_numpy()
    model = IntentModel.load(model_dir, device="cpu")
    int8 = IntentModel.load(model_dir, device="cpu")
    int8.net = torch.ao.quantization.quantize_dynamic(
        int8.net, {torch.nn.Linear}, dtype=torch.qint8
    )
    out: dict[str, Any] = {"n_test": len(texts)}
    for name, m in (("fp32", model), ("int8_dynamic", int8)):
        m.predict_proba(texts[:8])  # warm-up
        start = time.perf_counter()
        probs = m.predict_proba(texts)
        batch_s = time.perf_counter() - start
        lat = []
        for text in texts[:n_single]:
            t0 = time.perf_counter()
            m.predict_proba([text])
            lat.append((time.perf_counter() - t0) * 1000)
        out[name] = {
            "batch_texts_per_second": len(texts) / batch_s,
            "single_p50_ms": float(np.percentile(lat, 50)),
            "single_p95_ms": float(np.percentile(lat, 95)),
            "accuracy": float((probs.argmax(axis=1) == y).mean()),
        }
    out["int8_accuracy_minus_fp32"] = out["int8_dynamic"]["accuracy"] - out["fp32"]["accuracy"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-train", type=int, default=512)
    parser.add_argument("--n-test", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--model", default=None, help="local HF folder (default: MiniLM)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--single", type=int, default=100, help="texts for latency percentiles")
    parser.add_argument("--only", nargs="*", choices=list(RUNNERS), default=list(RUNNERS))
    parser.add_argument(
        "--output", type=Path, default=ROOT / "bench" / "results" / "intent_bench.json"
    )
    args = parser.parse_args(argv)
    cfg = {
        "n_train": args.n_train,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "lr": args.lr,
        "model": args.model,
        "seed": 0,
        "threads": args.threads,
    }
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_data(folder, args.n_train, args.n_test, seed=0)
        train = {name: run_isolated(name, folder, cfg) for name in args.only}
        tokens = padded_tokens(folder, cfg)
        for name, res in train.items():
            res["padded_tokens_per_epoch"] = tokens[name]
        inference = (
            bench_inference(Path(train["ours"]["model_dir"]), folder, args.single)
            if "ours" in train
            else None
        )
    for res in train.values():
        res.pop("model_dir", None)
    ours = train.get("ours", {}).get("samples_per_second")
    speedups = {
        f"ours_vs_{k}": ours / v["samples_per_second"]
        for k, v in train.items()
        if k != "ours" and ours
    }
    report = {
        "config": cfg,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "platform": platform.platform(),
        "torch": torch.__version__,
        "training": train,
        "real_tokens_per_epoch": tokens["real"],
        "speedup": speedups,
        "inference": inference,
    }
    print(
        f"\nintent fine-tuning: n_train={args.n_train} epochs={args.epochs} "
        f"batch={args.batch_size} threads={args.threads} device={report['device']}"
    )
    print(
        f"{'loop':<10}{'samples/s':>12}{'seconds':>10}{'peak MB':>10}{'pad.tokens':>12}"
        f"{'ours is':>10}"
    )
    for name, res in train.items():
        sp = ours / res["samples_per_second"] if ours else float("nan")
        print(
            f"{name:<10}{res['samples_per_second']:>12.1f}{res['seconds']:>10.1f}"
            f"{res['peak_memory_mb']:>10.0f}{res['padded_tokens_per_epoch']:>12}{sp:>9.2f}x"
        )
    if inference:
        print(f"\ninference on {inference['n_test']} test texts (CPU)")
        print(f"{'variant':<14}{'batch texts/s':>15}{'p50 ms':>9}{'p95 ms':>9}{'accuracy':>10}")
        for name in ("fp32", "int8_dynamic"):
            r = inference[name]
            print(
                f"{name:<14}{r['batch_texts_per_second']:>15.1f}{r['single_p50_ms']:>9.1f}"
                f"{r['single_p95_ms']:>9.1f}{r['accuracy']:>10.4f}"
            )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"\nwritten {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
