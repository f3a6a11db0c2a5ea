"""Real MiniLM weights (and the real Bitext data): does fine-tuning actually learn?"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from ml.core.config import load_params
from ml.models.intent.evaluate import evaluate_intent
from ml.models.intent.train import fit_intent

pytestmark = pytest.mark.real


def _real_params(tmp: Path, **overrides: Any) -> Any:
    base = {
        "paths.processed": str(tmp / "processed"),
        "paths.models": str(tmp / "models"),
        "paths.reports": str(tmp / "reports"),
        "intent.train.model_path": None,  # the shipped all-MiniLM-L6-v2
        "intent.train.max_length": 64,
        "intent.train.batch_size": 32,
        "intent.train.learning_rate": 5e-5,
        # The ONNX export's own tests and bench cover it; here it would add ~20 s of export.
        "intent.fast_variant.enabled": False,
    }
    return load_params(tmp / "none.yaml", base | overrides)


def test_minilm_fine_tune_beats_majority_class(tmp_path: Path, write_processed: Any) -> None:
    params = _real_params(tmp_path, **{"intent.train.epochs": 1})
    write_processed(params.paths.processed, n_train=40, n_eval=15)
    out = params.paths.models / "intent"
    fit_intent(params, params.paths.processed, out)
    result = evaluate_intent(
        params, params.paths.processed, out, params.paths.reports / "intent", log_to_mlflow=False
    )
    metrics = json.loads(Path(result["metrics_file"]).read_text())
    assert metrics["raw_macro_f1"] >= 0.9
    assert metrics["margin"]["macro_f1_over_majority"] >= 0.5


def _bitext_splits(csv: Path, folder: Path, n: int, seed: int) -> dict[str, int]:
    """A stratified n-row sample of Bitext, split 70/10/20 stratified, in the processed layout."""
    raw = pd.read_csv(csv, encoding="utf-8-sig")
    assert {"utterance", "intent"} <= set(raw.columns), f"{csv}: unexpected columns {raw.columns}"
    sample, _ = train_test_split(raw, train_size=n, stratify=raw["intent"], random_state=seed)
    sample = sample.reset_index(drop=True)
    frame = pd.DataFrame(
        {
            "example_id": [f"bitext-{i}" for i in sample.index],
            "text": sample["utterance"].astype(str),
            "label": sample["intent"],
        }
    )
    rest, test = train_test_split(frame, test_size=0.2, stratify=frame["label"], random_state=seed)
    train, val = train_test_split(rest, test_size=0.125, stratify=rest["label"], random_state=seed)
    (folder / "intent").mkdir(parents=True)
    for name, part in (("train", train), ("val", val), ("test", test)):
        part.to_parquet(folder / "intent" / f"{name}.parquet", index=False)
    labels = sorted(frame["label"].unique())
    (folder / "intent" / "label_map.json").write_text(json.dumps({"labels": labels}))
    return {"train": len(train), "val": len(val), "test": len(test), "labels": len(labels)}


def test_bitext_3000_sample_reaches_macro_f1(tmp_path: Path, shared_data: Path) -> None:
    params = _real_params(tmp_path, **{"intent.train.epochs": 1})
    csv = shared_data / "bitext_customer_support" / "bitext_customer_support_20k.csv"
    sizes = _bitext_splits(csv, params.paths.processed, 3000, seed=0)
    assert sizes["labels"] == 27
    out = params.paths.models / "intent"
    trained = fit_intent(params, params.paths.processed, out)
    result = evaluate_intent(
        params, params.paths.processed, out, params.paths.reports / "intent", log_to_mlflow=False
    )
    metrics = json.loads(Path(result["metrics_file"]).read_text())
    print(
        json.dumps(
            {
                "sizes": sizes,
                "val_history": trained["history"],
                "train_seconds": trained["train_seconds"],
                "test": metrics,
            },
            indent=1,
        )
    )
    assert metrics["raw_macro_f1"] >= 0.80
    # Fine-tuning is kept only when it beats the warm start on validation; report the test gap.
    assert metrics["margin"]["macro_f1_over_frozen_logreg"] > -0.02
