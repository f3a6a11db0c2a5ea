"""What scrubbing personal data costs the intent model: macro-F1 on scrubbed vs raw text.

The synthetic shop with ``generator.pii_rate`` (default 0.3: personal data in 30% of the
utterances) goes through the project's own ingest -> validate (scrubbing off) -> preprocess
intent steps once. Then the same rows are used twice, so the comparison is paired:
  raw        the processed splits as they are (e-mail addresses, phone numbers, names ... in
             the text);
  scrubbed   the same rows with every text passed through ml.validation.pii.scrub_texts (what
             ``validate`` writes to data/validated with privacy.enabled), placeholders such as
             <EMAIL> instead of the values.
Each is trained with the default recipe (ml.models.intent.train.fit_intent) and evaluated on its
own version of the same test rows (ml.models.intent.evaluate.evaluate_intent, no MLflow). The
difference scrubbed - raw (macro-F1 and accuracy, argmax) comes with the paired bootstrap
interval evaluate uses for its margins (ml.models.intent.evaluate.margin_with_interval).
The issue's goal, |difference| <= 0.5 point of macro-F1, is printed beside it, not asserted.

    .venv/bin/python bench/pii_model_impact.py                # default recipe, 3 days
    .venv/bin/python bench/pii_model_impact.py --epochs 1 --max-train-samples 500   # smoke run

Prints one table and writes bench/results/pii_model_impact.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "pii_model_impact.json"
GOAL_POINTS = 0.005
SPLITS = ("train", "val", "test")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pii-rate", type=float, default=0.3)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=None, help="intent.train.epochs")
    parser.add_argument("--max-train-samples", type=int, default=None)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def settings(args: argparse.Namespace, workdir: Path) -> list[str]:
    sets = [
        f"generator.pii_rate={args.pii_rate}",
        f"generator.days={args.days}",
        "privacy.enabled=false",  # the raw text reaches processed/; scrubbed below, same rows
        "validation.data_docs=false",
        f"mlflow.tracking_uri=sqlite:///{workdir / 'mlflow.db'}",
    ]
    if args.epochs is not None:
        sets.append(f"intent.train.epochs={args.epochs}")
    if args.max_train_samples is not None:
        sets.append(f"intent.train.max_train_samples={args.max_train_samples}")
    return sets


def raw_splits(sets: list[str], workdir: Path) -> Path:
    """ingest -> validate -> preprocess intent in ``workdir``; the processed folder."""
    from ml.cli import run_step

    common = ["--params", str(REPO / "params.yaml")]
    for entry in sets:
        common += ["--set", entry]
    cwd = Path.cwd()
    os.chdir(workdir)
    try:
        for argv in (["ingest"], ["validate"], ["preprocess", "intent"]):
            run_step([*argv, *common])
    finally:
        os.chdir(cwd)
    return workdir / "data" / "processed"


def scrubbed_copy(raw: Path, out: Path, privacy: Any) -> dict[str, int]:
    """The processed intent splits with every text scrubbed (same rows, same ids and labels);
    returns the spans replaced per type."""
    import pandas as pd

    from ml.validation.pii import scrub_texts

    (out / "intent").mkdir(parents=True, exist_ok=True)
    shutil.copy2(raw / "intent" / "label_map.json", out / "intent" / "label_map.json")
    counts: dict[str, int] = {}
    for split in SPLITS:
        frame = pd.read_parquet(raw / "intent" / f"{split}.parquet")
        result = scrub_texts(frame["text"].tolist(), privacy)
        frame["text"] = result.texts
        frame.to_parquet(out / "intent" / f"{split}.parquet", index=False)
        for entity, n in result.counts.items():
            counts[entity] = counts.get(entity, 0) + int(n)
    return counts


def train_and_evaluate(params: Any, processed: Path, out: Path) -> dict[str, Any]:
    from ml.models.intent.evaluate import evaluate_intent
    from ml.models.intent.train import fit_intent

    started = time.perf_counter()
    trained = fit_intent(params, processed, out / "model", resume=False)
    result = evaluate_intent(params, processed, out / "model", out / "reports", log_to_mlflow=False)
    metrics = json.loads(Path(result["metrics_file"]).read_text())
    return {
        "metrics": {k: metrics[k] for k in ("raw_accuracy", "raw_macro_f1", "n_test")},
        "best_epoch": trained["best_epoch"],
        "seconds": round(time.perf_counter() - started, 1),
        "predictions": result["predictions_file"],
    }


def paired_difference(scrubbed: dict[str, Any], raw: dict[str, Any], seed: int) -> dict[str, Any]:
    import pandas as pd

    from ml.models.intent.evaluate import margin_with_interval

    a = pd.read_parquet(scrubbed["predictions"])
    b = pd.read_parquet(raw["predictions"]).set_index("example_id").loc[a["example_id"]]
    return margin_with_interval(a, b["raw_predicted"].tolist(), seed)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for name, value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1")):
        os.environ.setdefault(name, value)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    from ml.core.config import load_params

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="shopflow-pii-impact-"))
    workdir.mkdir(parents=True, exist_ok=True)
    sets = settings(args, workdir)
    params = load_params(REPO / "params.yaml", sets)
    raw = raw_splits(sets, workdir)
    scrubbed = workdir / "scrubbed"
    replaced = scrubbed_copy(raw, scrubbed, params.privacy.model_copy(update={"enabled": True}))
    runs = {
        name: train_and_evaluate(params, folder, workdir / name)
        for name, folder in (("raw", raw), ("scrubbed", scrubbed))
    }
    diff = paired_difference(runs["scrubbed"], runs["raw"], params.seed)
    summary = {
        "settings": sets,
        "spans_replaced": replaced,
        "raw": {k: v for k, v in runs["raw"].items() if k != "predictions"},
        "scrubbed": {k: v for k, v in runs["scrubbed"].items() if k != "predictions"},
        "scrubbed_minus_raw": diff,
        "goal_abs_macro_f1_points": GOAL_POINTS,
        "workdir": str(workdir),
    }
    print_table(summary)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


def print_table(summary: dict[str, Any]) -> None:
    print(f"\nspans replaced in the scrubbed copy: {summary['spans_replaced']}")
    print(f"{'text':<10}{'accuracy':>10}{'macro-F1':>10}{'best epoch':>12}{'seconds':>10}")
    for name in ("raw", "scrubbed"):
        run = summary[name]
        m = run["metrics"]
        print(
            f"{name:<10}{m['raw_accuracy']:>10.4f}{m['raw_macro_f1']:>10.4f}"
            f"{run['best_epoch']:>12}{run['seconds']:>10}"
        )
    f1 = summary["scrubbed_minus_raw"]["macro_f1"]
    print(
        f"scrubbed - raw, macro-F1: {f1['difference']:+.4f} [{f1['low']:+.4f}, {f1['high']:+.4f}]"
        f" (goal: within +/-{GOAL_POINTS:.3f})"
    )


if __name__ == "__main__":
    raise SystemExit(main())
