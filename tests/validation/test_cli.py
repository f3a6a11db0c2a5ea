"""`python -m ml validate`: exit code 3 on failure, and what it prints (in-process, shared GE)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from ml.cli import main
from ml.data.corrupt import corrupt_partition

from .conftest import make_params, snapshot, write_world


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, Path]:
    params = make_params(tmp_path)
    write_world(params, days=1)
    corrupt_partition(
        params.paths.landing / "events" / "date=2026-11-01", "events", "null_ids", seed=0
    )
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params.model_dump(mode="json")), encoding="utf-8")
    return params_file, tmp_path


def test_single_partition_check_moves_nothing_and_exits_3(
    world: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    params_file, root = world
    before = snapshot(root / "landing")
    events = root / "landing" / "events" / "date=2026-11-01"
    assert main(["validate", "--params", str(params_file), "--partition", str(events)]) == 3
    err = capsys.readouterr().err
    assert "failed validation (not moved)" in err and "column 'event_id'" in err
    assert snapshot(root / "landing") == before
    catalog = root / "landing" / "catalog" / "date=2026-11-01"
    assert main(["validate", "--params", str(params_file), "--partition", str(catalog)]) == 0


def test_landing_run_prints_outcomes_and_exits_3(
    world: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    params_file, root = world
    misnamed = root / "landing" / "catalog" / "2026-11-01-late"
    shutil.copytree(root / "landing" / "catalog" / "date=2026-11-01", misnamed)
    code = main(["validate", "--params", str(params_file)])
    out, err = capsys.readouterr()
    assert code == 3
    assert "quarantined events     date=2026-11-01" in out
    assert "accepted    catalog    date=2026-11-01" in out
    assert "2 accepted, 2 quarantined" in out
    assert "error: 2 partition(s) failed validation" in err
    assert "expect_column_values_to_not_be_null" in err
    assert "rule partition_folder (partition folder must be named date=YYYY-MM-DD)" in err
    assert (root / "quarantine" / "catalog" / "2026-11-01-late" / "part-000.csv").is_file()
    assert (root / "quarantine" / "events" / "date=2026-11-01" / "REASON.txt").is_file()
    # Second run: nothing left to fail, the accepted ones are skipped.
    assert main(["validate", "--params", str(params_file)]) == 0
    assert "2 unchanged since validated (skipped)" in capsys.readouterr().out
