from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ml.core.errors import InputError
from ml.data.adapters import bitext_to_landing, read_table, stratified_sample


def test_bom_csv_columns_are_clean(tmp_path: Path) -> None:
    f = tmp_path / "x.csv"
    f.write_bytes(
        '\ufeffflags,utterance,category,intent\nB,"hi, there",ORDER,track_order\n'.encode()
    )
    df = read_table(f)
    assert list(df.columns) == ["flags", "utterance", "category", "intent"]
    assert df.loc[0, "utterance"] == "hi, there"


def test_unknown_columns_and_formats_are_clear_errors(tmp_path: Path) -> None:
    f = tmp_path / "x.csv"
    f.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match=r"column\(s\) \['utterance', 'intent'\] not found"):
        bitext_to_landing(f, tmp_path / "landing", date="2026-11-01", sample=None, seed=0)
    xlsx = tmp_path / "x.xlsx"
    xlsx.write_bytes(b"PK")
    with pytest.raises(InputError, match=r"unsupported file type '\.xlsx'"):
        read_table(xlsx)
    with pytest.raises(InputError, match="file not found"):
        read_table(tmp_path / "absent.csv")


def test_stratified_sample_keeps_shares_and_rare_labels() -> None:
    df = pd.DataFrame({"label": ["a"] * 900 + ["b"] * 95 + ["c"] * 5})
    sample = stratified_sample(df, "label", 100, seed=1)
    counts = sample["label"].value_counts()
    assert counts["a"] == 90 and counts["b"] == 10 and counts["c"] == 1


@pytest.mark.real
def test_bitext_lands_as_an_utterance_partition(shared_data: Path, tmp_path: Path) -> None:
    csv = shared_data / "bitext_customer_support" / "bitext_customer_support_20k.csv"
    meta = bitext_to_landing(csv, tmp_path, date="2026-11-01", sample=3000, seed=3)
    part = pd.read_csv(Path(meta["partition"]) / "part-000.csv", dtype=str)
    assert list(part.columns) == ["utterance_id", "text", "intent", "timestamp"]
    assert 2950 <= len(part) <= 3050
    assert part["intent"].nunique() == meta["labels"] >= 25
    assert part["utterance_id"].is_unique
