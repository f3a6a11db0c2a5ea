"""The real Bitext data through the same ingest -> validate -> preprocess steps as the shop's."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from ml.cli import run_step


@pytest.mark.real
def test_bitext_goes_through_ingest_validation_and_preprocessing(
    repo_root: Path, shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    csv = shared_data / "bitext_customer_support" / "bitext_customer_support_20k.csv"
    common = [
        "--params",
        str(repo_root / "params.yaml"),
        "--set",
        f"@{repo_root / 'configs' / 'bitext.yaml'}",
        "--set",
        f"ingest.intent_file={csv}",
        "--set",
        "validation.data_docs=false",
    ]
    landed = run_step(["ingest", *common])
    assert 2950 <= landed["rows"] <= 3050

    validated = run_step(["validate", *common])
    assert validated["counts"].get("accepted") == 1, validated
    accepted = list((tmp_path / "data/bitext/validated/utterances").glob("date=*/part-000.csv"))
    assert len(accepted) == 1
    assert not (tmp_path / "data/bitext/quarantine").exists()

    stats = run_step(["preprocess", "intent", *common])
    assert stats["split_method"] == "stratified"
    out = tmp_path / "data/bitext/processed/intent"
    labels = json.loads((out / "label_map.json").read_text())["labels"]
    assert len(labels) >= 25
    test = pd.read_parquet(out / "test.parquet")
    # Stratified: every intent with at least 3 examples has test examples.
    train = pd.read_parquet(out / "train.parquet")
    assert set(test["label"]) == set(train["label"]) == set(labels)
    assert not set(test["example_id"]) & set(train["example_id"])
