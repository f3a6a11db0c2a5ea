"""Intent fast inference path: torch fp32, torch int8 dynamic, ONNX fp32, ONNX int8, in one run.

The model is the default intent recipe fine-tuned by the project's own steps (ingest -> validate
-> preprocess intent -> train intent -> evaluate intent, each profile in a work folder of its own
with its own MLflow store) on real data from ../shared/data:
  hwu64   configs/hwu64.yaml: HWU64's official test fold (1,076 rows, frozen), val split off the
          train file per intent;
  bitext  configs/bitext.yaml: the project's own split of a 3,000-row Bitext sample (stratified
          per intent).
Reduced training budget, so the bench fits a shared 2-core machine: --max-train-samples (default
1000) and --epochs (default 2) instead of the recipe's full train split and 4 epochs. Accuracies
are therefore below a full run's; the comparison is between variants of the same weights.

Variants, all scoring through the same code (ml.models.intent.scoring.score_intent_model, with
the model's threshold, as served):
  torch_fp32     IntentModel as the pyfunc serves it;
  torch_int8     the same with torch.ao dynamic int8 quantisation of every nn.Linear;
  onnx_fp32      ml.models.intent.onnx_model.export(quantize=False): TorchScript export + ONNX
                 Runtime BERT fusions (attention, skip layer norm, bias GELU, embeddings);
  onnx_int8      export(quantize=True): the same + dynamic int8 weights of MatMul / Attention.
Throughput (texts/s): predict_proba on the test texts (tokenising included, length-sorted
batches as in serving) at batch sizes 1, 8 and 32: --rounds rounds, the variants interleaved in
each round (a shared machine's load hits them alike), the median round reported; cpu texts/s =
texts per process CPU second (less sensitive to other load). --threads torch and ONNX Runtime
intra-op threads (default 1: on 2 busy shared cores a second thread mostly waits).
Accuracy: on the whole frozen test split, with the out-of-scope threshold (as served) and raw
(argmax). The goal of issue #13 (ONNX int8 >= 1.5x torch fp32 texts/s at batch 32, accuracy
loss <= 1 point) is printed beside the numbers, not asserted.

    .venv/bin/python bench/intent_fast_path.py
    .venv/bin/python bench/intent_fast_path.py --datasets hwu64 --max-train-samples 500 --epochs 1

Prints one table and writes bench/results/intent_fast_path.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "bench" / "results" / "intent_fast_path.json"
VARIANTS = ("torch_fp32", "torch_int8", "onnx_fp32", "onnx_int8")
BATCH_SIZES = (1, 8, 32)
GOAL_SPEEDUP, GOAL_MAX_DROP = 1.5, 0.01
# name -> (its profile in configs/, where its files are)
DATASETS: dict[str, tuple[str, list[str]]] = {
    "hwu64": (
        "hwu64",
        [
            f"ingest.intent_file={DATA / 'hwu64' / 'hwu64_train.csv'}",
            f"ingest.test_file={DATA / 'hwu64' / 'hwu64_test.csv'}",
        ],
    ),
    "bitext": (
        "bitext",
        [
            "ingest.intent_file="
            f"{DATA / 'bitext_customer_support' / 'bitext_customer_support_20k.csv'}"
        ],
    ),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="*", choices=list(DATASETS), default=list(DATASETS))
    parser.add_argument("--max-train-samples", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--texts", type=int, default=256, help="texts timed at batch 8 and 32")
    parser.add_argument("--single-texts", type=int, default=64, help="texts timed at batch 1")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--note", default="")
    return parser.parse_args(argv)


def train(name: str, args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    """The project's steps for ``name`` in ``workdir``; returns each step's seconds."""
    from intent_steps import run_intent_steps

    profile, data = DATASETS[name]
    sets = [
        f"@{REPO / 'configs' / f'{profile}.yaml'}",
        *data,
        f"mlflow.tracking_uri=sqlite:///{workdir / 'mlflow.db'}",
        "validation.data_docs=false",
        f"intent.train.epochs={args.epochs}",
        f"intent.train.max_train_samples={args.max_train_samples}",
        f"intent.fast_variant.intra_op_threads={args.threads}",
    ]
    return run_intent_steps(workdir, sets, name)


def load_variants(bundle: Path, work: Path, threads: int) -> dict[str, Any]:
    import torch

    from ml.models.intent.model import IntentModel
    from ml.models.intent.onnx_model import export, load_onnx_intent_model

    int8 = IntentModel.load(bundle, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notices
        int8.net = torch.ao.quantization.quantize_dynamic(
            int8.net, {torch.nn.Linear}, dtype=torch.qint8
        )
    return {
        "torch_fp32": IntentModel.load(bundle, device="cpu"),
        "torch_int8": int8,
        "onnx_fp32": load_onnx_intent_model(
            export(bundle, work / "onnx_fp32", quantize=False), intra_op_threads=threads
        ),
        "onnx_int8": load_onnx_intent_model(
            export(bundle, work / "onnx_int8", quantize=True), intra_op_threads=threads
        ),
    }


def throughput(models: dict[str, Any], texts: list[str], args: argparse.Namespace) -> dict:
    """texts/s per variant and batch size: the median of ``rounds`` interleaved rounds."""
    wall: dict[str, dict[int, list[float]]] = {v: {b: [] for b in BATCH_SIZES} for v in models}
    cpu: dict[str, dict[int, list[float]]] = {v: {b: [] for b in BATCH_SIZES} for v in models}
    for model in models.values():
        model.predict_proba(texts[:8])  # warm-up
    for r in range(args.rounds):
        order = list(models)[r % len(models) :] + list(models)[: r % len(models)]
        for batch in BATCH_SIZES:
            sample = texts[: args.single_texts if batch == 1 else args.texts]
            for name in order:
                model = models[name]
                model.batch_size = batch
                t0, c0 = time.perf_counter(), time.process_time()
                model.predict_proba(sample)
                wall[name][batch].append(len(sample) / (time.perf_counter() - t0))
                cpu[name][batch].append(len(sample) / max(time.process_time() - c0, 1e-9))
    return {
        name: {
            str(b): {
                "texts_per_second": statistics.median(wall[name][b]),
                "cpu_texts_per_second": statistics.median(cpu[name][b]),
                "rounds_texts_per_second": wall[name][b],
            }
            for b in BATCH_SIZES
        }
        for name in models
    }


def accuracy(models: dict[str, Any], test: Any) -> dict[str, dict[str, float]]:
    from ml.models.intent.scoring import frame_metrics, score_intent_model

    out = {}
    for name, model in models.items():
        model.batch_size = 64
        m = frame_metrics(score_intent_model(model, test))
        out[name] = {k: m[k] for k in ("accuracy", "raw_accuracy", "macro_f1")}
    return out


def bench_dataset(name: str, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    import torch

    from ml.models.intent.data import load_labels, load_split

    workdir = root / name
    workdir.mkdir(parents=True, exist_ok=True)
    seconds = train(name, args, workdir)
    profile = DATASETS[name][0]
    processed = workdir / "data" / profile / "processed"
    bundle = workdir / "models" / profile / "intent" / "model"
    test = load_split(processed, "test", load_labels(processed))
    torch.set_num_threads(args.threads)
    models = load_variants(bundle, workdir, args.threads)
    acc = accuracy(models, test)
    # Timed texts in a fixed shuffled order: a mix of lengths in every sample.
    texts = test["text"].sample(frac=1.0, random_state=0).tolist()
    speed = throughput(models, texts, args)
    evaluated = json.loads((workdir / "reports" / profile / "intent" / "metrics.json").read_text())
    trained = json.loads(
        (workdir / "models" / profile / "intent" / "train_summary.json").read_text()
    )
    base = speed["torch_fp32"]
    return {
        "n_test": len(test),
        "split_policy": evaluated.get("split_policy"),
        "mean_test_tokens": float(
            np.mean([len(x) for x in models["torch_fp32"].tokenizer(texts)["input_ids"]])
        ),
        "training": {k: trained.get(k) for k in ("n_train", "best_epoch", "train_seconds")},
        "step_seconds": seconds,
        "accuracy": acc,
        "accuracy_minus_torch_fp32": {
            v: acc[v]["accuracy"] - acc["torch_fp32"]["accuracy"] for v in models
        },
        "throughput": speed,
        "speedup_vs_torch_fp32": {
            v: {
                str(b): speed[v][str(b)]["texts_per_second"] / base[str(b)]["texts_per_second"]
                for b in BATCH_SIZES
            }
            for v in models
        },
        "cpu_speedup_vs_torch_fp32": {
            v: {
                str(b): speed[v][str(b)]["cpu_texts_per_second"]
                / base[str(b)]["cpu_texts_per_second"]
                for b in BATCH_SIZES
            }
            for v in models
        },
        # What `evaluate intent` decided for this model (intent.fast_variant).
        "evaluate_fast_variant": evaluated.get("fast_variant"),
        "onnx_meta": json.loads((workdir / "onnx_int8" / "intent_meta.json").read_text())["onnx"],
    }


def print_table(report: dict[str, Any]) -> None:
    cfg = report["config"]
    print(
        f"\nintent inference, CPU, {cfg['threads']} thread(s); model fine-tuned with a reduced "
        f"budget (max_train_samples={cfg['max_train_samples']}, epochs={cfg['epochs']})"
    )
    for name, res in report["datasets"].items():
        print(
            f"\n{name}: {res['n_test']} test rows ({res['split_policy']}), "
            f"mean {res['mean_test_tokens']:.1f} tokens/text"
        )
        head = "".join(f"{'bs' + str(b) + ' t/s':>11}" for b in BATCH_SIZES)
        print(f"{'variant':<12}{head}{'x bs32':>8}{'x cpu32':>8}{'accuracy':>10}{'raw acc':>9}")
        for v in VARIANTS:
            tp = "".join(
                f"{res['throughput'][v][str(b)]['texts_per_second']:>11.1f}" for b in BATCH_SIZES
            )
            print(
                f"{v:<12}{tp}{res['speedup_vs_torch_fp32'][v]['32']:>7.2f}x"
                f"{res['cpu_speedup_vs_torch_fp32'][v]['32']:>7.2f}x"
                f"{res['accuracy'][v]['accuracy']:>10.4f}{res['accuracy'][v]['raw_accuracy']:>9.4f}"
            )
        check = res.get("evaluate_fast_variant") or {}
        print(
            f"evaluate's check: {check.get('variant')} ok={check.get('ok')} "
            f"accuracy_delta={check.get('accuracy_delta', float('nan')):+.4f}"
        )
    goal = report["goal"]
    print(
        f"\ngoal: onnx_int8 >= {GOAL_SPEEDUP}x torch_fp32 texts/s at batch 32 and accuracy loss "
        f"<= {GOAL_MAX_DROP:.2f}: {'met' if goal['met'] else 'NOT met'} {goal['per_dataset']}"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = [p for p in (DATA / "hwu64", DATA / "bitext_customer_support") if not p.is_dir()]
    if missing:
        print(f"intent_fast_path: {missing} not found", file=sys.stderr)
        return 2
    import torch

    root = args.workdir or Path(tempfile.mkdtemp(prefix="shopflow-fast-path-"))
    root.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    datasets = {name: bench_dataset(name, args, root.resolve()) for name in args.datasets}
    per_dataset = {
        name: {
            "speedup_bs32": res["speedup_vs_torch_fp32"]["onnx_int8"]["32"],
            "accuracy_delta": res["accuracy_minus_torch_fp32"]["onnx_int8"],
        }
        for name, res in datasets.items()
    }
    met = all(
        d["speedup_bs32"] >= GOAL_SPEEDUP and d["accuracy_delta"] >= -GOAL_MAX_DROP
        for d in per_dataset.values()
    )
    report = {
        "config": {
            "max_train_samples": args.max_train_samples,
            "epochs": args.epochs,
            "threads": args.threads,
            "rounds": args.rounds,
            "texts": args.texts,
            "single_texts": args.single_texts,
            "batch_sizes": list(BATCH_SIZES),
        },
        "note": args.note,
        "goal": {"per_dataset": per_dataset, "met": met},
        "datasets": datasets,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_1min_before": load_before,
            "load_average_1min_after": os.getloadavg()[0],
            "torch": torch.__version__,
            "onnxruntime": _version("onnxruntime"),
        },
        "workdir": str(root),
    }
    print_table(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


if __name__ == "__main__":
    raise SystemExit(main())
