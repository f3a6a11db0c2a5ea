"""RecBole atomic files -> the processed contract, on a hand-made miniature."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ml.cli import main
from ml.core.errors import InputError
from ml.models.recommender.data import load_recsys
from ml.models.recommender.recbole import import_recbole, split_text, top_categories

HEADER = "user_id:token\titem_id_list:token_seq\titem_id:token\n"


def _write(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Mini.item2index").write_text("A1\t0\nA2\t1\nA3\t2\nA4\t3\n")
    (folder / "Mini.user2index").write_text("U1\t0\nU2\t1\n")
    (folder / "Mini.text").write_text(
        "item_id:token\ttext:token_seq\n"
        'A1\tGlue "Super" 8 oz. Industrial & Scientific Tapes, Adhesives & Sealants Glue. '
        "Gorilla. \n"
        "A2\tTape 3/4 in. Industrial & Scientific Tapes, Adhesives & Sealants Tape. 3M. \n"
        "A3\tMop. Industrial & Scientific Janitorial Supplies Mops. Libman. \n"
        "A4\tBucket. Industrial & Scientific Janitorial Supplies Buckets. Rubbermaid. \n"
    )
    (folder / "Mini.train.inter").write_text(HEADER + "0\t0\t1\n")
    (folder / "Mini.valid.inter").write_text(HEADER + "0\t0 1\t2\n1\t3\t0\n")
    (folder / "Mini.test.inter").write_text(HEADER + "0\t0 1 2\t3\n1\t3 0\t1\n")
    return folder


def test_import_builds_contract(tmp_path: Path) -> None:
    meta = import_recbole(_write(tmp_path / "raw"), tmp_path / "processed")
    assert meta["items"] == 4 and meta["users"] == 2
    assert meta["test_history_equals_valid_plus_target"] == 2
    data = load_recsys(tmp_path / "processed")
    assert data.items["item_id"].tolist() == ["A1", "A2", "A3", "A4"]
    assert data.items.loc[0, "title"] == 'Glue "Super" 8 oz'
    assert data.items.loc[0, "brand"] == "Gorilla"
    assert (
        data.items["category"].tolist()
        == ["Tapes, Adhesives & Sealants"] * 2 + ["Janitorial Supplies"] * 2
    )
    assert data.train["items"].map(list).tolist() == [[0, 1], [3]]
    assert data.val["target"].tolist() == [2, 0]
    assert data.test["history"].map(list).tolist() == [[0, 1, 2], [3, 0]]


def test_cli_import_and_errors(tmp_path: Path) -> None:
    raw = _write(tmp_path / "raw")
    assert (
        main(
            [
                "import-recbole",
                "--params",
                str(tmp_path / "none.yaml"),
                "--dir",
                str(raw),
                "--out",
                str(tmp_path / "p"),
            ]
        )
        == 0
    )
    assert pd.read_parquet(tmp_path / "p" / "recsys" / "users.parquet").shape == (2, 2)
    (raw / "Mini.item2index").unlink()
    with pytest.raises(InputError, match="item2index"):
        import_recbole(raw, tmp_path / "q")
    assert (
        main(
            [
                "import-recbole",
                "--params",
                str(tmp_path / "none.yaml"),
                "--dir",
                str(tmp_path / "missing"),
            ]
        )
        == InputError.exit_code
    )


def test_text_parsing_helpers() -> None:
    assert split_text("T. Industrial & Scientific A B. Brand. ") == ("T", "A B", "Brand")
    assert split_text("just a title") == ("just a title", "", "")
    assert top_categories(["Fasteners Screws Wood", "Fasteners Nuts Hex", ""]) == [
        "Fasteners Screws",
        "Fasteners Nuts",
        "unknown",
    ]
