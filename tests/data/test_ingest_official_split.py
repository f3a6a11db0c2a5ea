"""Ingest of an intent_file with its official split (test_file, val_file, split_column)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from ml.core.config import IngestConfig, Params, PathsConfig, load_params
from ml.core.errors import ConfigError, InputError
from ml.core.schemas import UTTERANCE_COLUMNS
from ml.data.ingest import ingest


def write_csv(path: Path, rows: list[tuple[str, ...]], header: str = "text,intent") -> Path:
    lines = [header, *(",".join(row) for row in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def params_for(tmp_path: Path, **ingest_cfg: object) -> Params:
    return Params(
        paths=PathsConfig(landing=tmp_path / "landing"),
        ingest=IngestConfig.model_validate(
            {"source": "intent_file", "text_column": "text", "label_column": "intent"} | ingest_cfg
        ),
    )


def landed(meta: dict) -> pd.DataFrame:
    return pd.read_csv(Path(meta["partition"]) / "part-000.csv", dtype=str, keep_default_na=False)


def labelled(prefix: str, n: int) -> list[tuple[str, str]]:
    return [(f"{prefix} question {i}", ("alarm_set", "play_music")[i % 2]) for i in range(n)]


def test_test_and_val_files_land_with_their_split(tmp_path: Path) -> None:
    train = write_csv(tmp_path / "train.csv", labelled("train", 20))
    test = write_csv(tmp_path / "test.csv", labelled("test", 6))
    val = write_csv(tmp_path / "val.csv", labelled("val", 4))
    params = params_for(tmp_path, intent_file=train, test_file=test, val_file=val)
    meta = ingest(params)
    part = landed(meta)
    assert list(part.columns) == [*UTTERANCE_COLUMNS, "split"]
    assert meta["rows"] == 30 and part["utterance_id"].is_unique
    assert meta["official_splits"] == {"train": 0, "val": 4, "test": 6, "unassigned": 20}
    by_split = part.groupby("split")["text"].apply(set).to_dict()
    assert by_split["test"] == {t for t, _ in labelled("test", 6)}
    assert by_split["val"] == {t for t, _ in labelled("val", 4)}
    assert by_split[""] == {t for t, _ in labelled("train", 20)}


def test_sample_thins_the_training_pool_but_never_the_test_file(tmp_path: Path) -> None:
    train = write_csv(tmp_path / "train.csv", labelled("train", 100))
    test = write_csv(tmp_path / "test.csv", labelled("test", 30))
    params = params_for(tmp_path, intent_file=train, test_file=test, sample=10)
    meta = ingest(params)
    assert meta["official_splits"]["test"] == 30
    assert meta["official_splits"]["unassigned"] == 10


def test_split_column_values_are_case_insensitive_and_empty_means_unassigned(
    tmp_path: Path,
) -> None:
    rows = [("a", "x", "TRAIN"), ("b", "x", " Test "), ("c", "y", "val"), ("d", "y", "")]
    data = write_csv(tmp_path / "data.csv", rows, header="text,intent,fold")
    meta = ingest(params_for(tmp_path, intent_file=data, split_column="fold"))
    assert list(landed(meta)["split"]) == ["train", "test", "val", ""]
    assert "fold" not in landed(meta).columns


def test_json_nulls_in_the_split_column_are_unassigned(tmp_path: Path) -> None:
    data = tmp_path / "data.json"
    rows = [
        {"text": "a", "intent": "x", "fold": "test"},
        {"text": "b", "intent": "x", "fold": None},
    ]
    data.write_text(json.dumps(rows), encoding="utf-8")
    meta = ingest(params_for(tmp_path, intent_file=data, split_column="fold"))
    assert list(landed(meta)["split"]) == ["test", ""]


def test_without_official_split_settings_no_split_column_is_written(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "data.csv", labelled("plain", 4))
    meta = ingest(params_for(tmp_path, intent_file=data))
    assert list(landed(meta).columns) == list(UTTERANCE_COLUMNS)
    assert "official_splits" not in meta


def test_test_file_with_another_source_is_a_config_error(tmp_path: Path) -> None:
    params = params_for(tmp_path, test_file=tmp_path / "test.csv")
    params.ingest.source = "synthetic"
    with pytest.raises(
        ConfigError,
        match=r"ingest\.test_file is set but ingest\.source is synthetic: .*"
        r"apply to source intent_file only",
    ):
        ingest(params)


def test_unknown_split_values_name_file_column_rule_and_count(tmp_path: Path) -> None:
    rows = [("a", "x", "dev"), ("b", "x", "test"), ("c", "y", "holdout"), ("d", "y", "dev")]
    data = write_csv(tmp_path / "data.csv", rows, header="text,intent,fold")
    with pytest.raises(InputError) as caught:
        ingest(params_for(tmp_path, intent_file=data, split_column="fold"))
    message = str(caught.value)
    assert "\n" not in message
    assert str(data) in message and "split column 'fold'" in message
    assert "3 row(s)" in message and "other than train, val or test" in message
    assert "['dev', 'holdout']" in message
    assert not (tmp_path / "landing" / "utterances").exists()


def test_missing_split_column_names_the_file_and_its_columns(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "data.csv", labelled("x", 2))
    with pytest.raises(
        InputError,
        match=r"data\.csv: split column 'fold' \(ingest\.split_column\) not found; "
        r"columns are \['text', 'intent'\]",
    ):
        ingest(params_for(tmp_path, intent_file=data, split_column="fold"))


def test_test_file_without_the_text_column_names_that_file(tmp_path: Path) -> None:
    train = write_csv(tmp_path / "train.csv", labelled("train", 2))
    test = write_csv(tmp_path / "test.csv", [("hi", "x")], header="utterance,intent")
    with pytest.raises(InputError, match=r"test\.csv: column\(s\) \['text'\] not found"):
        ingest(params_for(tmp_path, intent_file=train, test_file=test))


def test_hwu64_profile_keeps_its_test_fold_and_its_own_paths(repo_root: Path) -> None:
    params = load_params(repo_root / "params.yaml", [f"@{repo_root / 'configs/hwu64.yaml'}"])
    assert params.ingest.source == "intent_file"
    assert params.ingest.test_file == Path("../shared/data/hwu64/hwu64_test.csv")
    assert params.ingest.intent_file == Path("../shared/data/hwu64/hwu64_train.csv")
    assert (params.ingest.text_column, params.ingest.label_column) == ("text", "intent")
    assert params.preprocess.intent.split.method == "stratified"
    assert params.paths.processed == Path("data/hwu64/processed")
    assert params.paths.models == Path("models/hwu64")
