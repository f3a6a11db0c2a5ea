"""HWU64 with its frozen test fold through ingest -> validate -> preprocess -> train -> evaluate.

Training runs on a reduced budget (a sample of the train split, one epoch) so CI can afford it;
bench/hwu64_quality.py is the full run of the default recipe."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from ml.cli import run_step
from ml.preprocess.intent import normalise_text, text_key


@pytest.mark.real
def test_hwu64_official_test_fold_comes_out_as_the_test_split(
    repo_root: Path, shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = shared_data / "hwu64"
    common = [
        "--params",
        str(repo_root / "params.yaml"),
        "--set",
        f"@{repo_root / 'configs' / 'hwu64.yaml'}",
        "--set",
        f"ingest.intent_file={data / 'hwu64_train.csv'}",
        "--set",
        f"ingest.test_file={data / 'hwu64_test.csv'}",
        "--set",
        "validation.data_docs=false",
    ]
    landed = run_step(["ingest", *common])
    assert landed["official_splits"] == {"train": 0, "val": 0, "test": 1076, "unassigned": 9960}

    validated = run_step(["validate", *common])
    assert validated["counts"].get("accepted") == 1, validated

    stats = run_step(["preprocess", "intent", *common])
    assert stats["split_policy"].startswith("official test (1076 rows) + stratified train/val")
    out = tmp_path / "data/hwu64/processed/intent"
    splits = {s: pd.read_parquet(out / f"{s}.parquet") for s in ("train", "val", "test")}
    official = pd.read_csv(data / "hwu64_test.csv", dtype=str, keep_default_na=False)
    frozen = {text_key(normalise_text(t)) for t in official["text"]}
    assert {text_key(t) for t in splits["test"]["text"]} == frozen
    assert len(splits["test"]) == 1076
    rest = pd.concat([splits["train"], splits["val"]])
    assert not {text_key(t) for t in rest["text"]} & frozen
    labels = json.loads((out / "label_map.json").read_text())["labels"]
    assert len(labels) == 64 == splits["val"]["label"].nunique()

    budget = ["--set", "intent.train.max_train_samples=640", "--set", "intent.train.epochs=1"]
    # No ONNX export here (~20 s on MiniLM): tests/intent/test_onnx_model.py and the bench cover it.
    budget += ["--set", "intent.fast_variant.enabled=false"]
    run_step(["train", "intent", *common, *budget])
    evaluated = run_step(["evaluate", "intent", *common, *budget])
    assert evaluated["split_policy"] == stats["split_policy"]
    metrics = json.loads(Path(evaluated["metrics_file"]).read_text())
    print(json.dumps({k: metrics[k] for k in ("raw_accuracy", "raw_macro_f1", "margin")}))
    assert metrics["n_test"] == 1076 and metrics["split_policy"] == stats["split_policy"]
    # Same-run baselines: frozen MiniLM + LR is strong here, the majority class is not.
    frozen = metrics["baselines"]["frozen_encoder_logreg"]
    assert frozen["accuracy"] > 0.6 > 0.1 > metrics["baselines"]["majority_class"]["accuracy"]
    margin = metrics["margin_interval"]["accuracy_over_frozen_logreg"]
    assert margin["low"] <= margin["difference"] <= margin["high"]
    assert margin["difference"] == pytest.approx(metrics["raw_accuracy"] - frozen["accuracy"])

    # The MLflow training run says which test set its numbers come from, and has them.
    import mlflow

    registration = json.loads((tmp_path / "models/hwu64/intent/registration.json").read_text())
    run = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db").get_run(
        registration["run_id"]
    )
    assert run.data.tags["split_policy"] == stats["split_policy"]
    assert run.data.metrics["test_raw_accuracy"] == pytest.approx(metrics["raw_accuracy"])
