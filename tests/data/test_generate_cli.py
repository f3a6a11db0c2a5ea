"""`python -m ml generate` through ml.cli.main."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
import yaml

import ml.cli
from ml.core.schemas import CATALOG_COLUMNS, DATASETS

SMALL = {
    "seed": 5,
    "days": 2,
    "n_items": 120,
    "n_categories": 8,
    "n_users": 60,
    "utterances_per_day": 80,
}


@pytest.fixture
def params_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Only this area's commands: the test must not depend on other steps being importable.
    monkeypatch.setattr(ml.cli, "COMMAND_MODULES", ["ml.data.cli"])
    path = tmp_path / "params.yaml"
    path.write_text(
        yaml.safe_dump({"paths": {"landing": str(tmp_path / "landing")}, "generator": SMALL}),
        encoding="utf-8",
    )
    return path


@pytest.fixture
def fake_corrupt(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path, str, str, int]]:
    """Stands in for ml.data.corrupt (another area): records what the CLI asks it to do."""
    calls: list[tuple[Path, str, str, int]] = []

    def corrupt_partition(partition_dir: Path, dataset: str, kind: str, seed: int) -> str:
        calls.append((partition_dir, dataset, kind, seed))
        (partition_dir / "part-000.csv").write_text("broken\n", encoding="utf-8")
        return f"{kind} applied"

    module = types.ModuleType("ml.data.corrupt")
    module.CORRUPTION_KINDS = ("drop_column", "null_ids")  # type: ignore[attr-defined]
    module.corrupt_partition = corrupt_partition  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ml.data.corrupt", module)
    return calls


def test_generate_is_registered() -> None:
    assert "ml.data.cli" in ml.cli.COMMAND_MODULES


def test_generate_writes_days_and_reports_counts(
    params_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    summary = tmp_path / "summary.json"
    argv = [
        "generate",
        "--params",
        str(params_file),
        "--out",
        str(out),
        "--output-json",
        str(summary),
    ]
    assert ml.cli.main(argv) == 0
    result = json.loads(summary.read_text(encoding="utf-8"))
    assert result["dates"] == ["2026-11-01", "2026-11-02"]
    assert result["rows"]["catalog"] == {"2026-11-01": 120, "2026-11-02": 0, "total": 120}
    assert result["rows"]["utterances"]["total"] == 160
    for dataset in DATASETS:
        assert len(list((out / dataset).glob("date=*/part-000.csv"))) == 2
    assert '"total"' in capsys.readouterr().out


def test_generate_defaults_to_landing_and_days_options(params_file: Path, tmp_path: Path) -> None:
    argv = ["generate", "--params", str(params_file), "--first-day", "4", "--days", "1"]
    assert ml.cli.main([*argv, "--set", "generator.drift.new_items=3"]) == 0
    catalog = tmp_path / "landing" / "catalog" / "date=2026-11-05" / "part-000.csv"
    lines = catalog.read_text(encoding="utf-8").splitlines()
    assert lines[0] == ",".join(CATALOG_COLUMNS) and len(lines) == 4
    assert sorted(p.name for p in (tmp_path / "landing" / "events").iterdir()) == [
        "date=2026-11-05"
    ]


def test_generate_corrupts_the_requested_partition(
    params_file: Path, tmp_path: Path, fake_corrupt: list[tuple[Path, str, str, int]]
) -> None:
    out = tmp_path / "out"
    argv = ["generate", "--params", str(params_file), "--out", str(out)]
    assert ml.cli.main([*argv, "--corrupt", "null_ids", "--corrupt-dataset", "events"]) == 0
    # Default: the last day written; seeded by (generator seed + day).
    partition = out / "events" / "date=2026-11-02"
    assert fake_corrupt == [(partition, "events", "null_ids", SMALL["seed"] + 1)]
    assert (partition / "part-000.csv").read_text(encoding="utf-8") == "broken\n"
    assert (
        ml.cli.main(
            [
                *argv,
                "--corrupt",
                "drop_column",
                "--corrupt-dataset",
                "catalog",
                "--corrupt-day",
                "0",
            ]
        )
        == 0
    )
    assert fake_corrupt[-1][0] == out / "catalog" / "date=2026-11-01"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--corrupt", "melt", "--corrupt-dataset", "events"], "unknown"),
        (["--corrupt", "null_ids"], "--corrupt-dataset"),
        (["--corrupt-dataset", "events"], "without --corrupt"),
        (
            ["--corrupt", "null_ids", "--corrupt-dataset", "events", "--corrupt-day", "9"],
            "not generated",
        ),
        (["--days", "0"], "--days"),
    ],
)
def test_generate_rejects_bad_options_before_writing(
    params_file: Path,
    tmp_path: Path,
    fake_corrupt: list[tuple[Path, str, str, int]],
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    out = tmp_path / "out"
    code = ml.cli.main(["generate", "--params", str(params_file), "--out", str(out), *extra])
    assert code == 4
    assert message in capsys.readouterr().err
    assert not out.exists() and not fake_corrupt


def test_generate_with_the_real_corruption_module(params_file: Path, tmp_path: Path) -> None:
    from ml.data.corrupt import CORRUPTION_KINDS

    out = tmp_path / "out"
    argv = ["generate", "--params", str(params_file), "--out", str(out), "--days", "1"]
    clean = tmp_path / "clean"
    assert ml.cli.main(["generate", "--params", str(params_file), "--out", str(clean)]) == 0
    kind = next(k for k, datasets in CORRUPTION_KINDS.items() if "utterances" in datasets)
    assert ml.cli.main([*argv, "--corrupt", kind, "--corrupt-dataset", "utterances"]) == 0
    part = Path("utterances") / "date=2026-11-01" / "part-000.csv"
    assert (out / part).read_bytes() != (clean / part).read_bytes()
    # Other partitions of the day are untouched.
    events = Path("events") / "date=2026-11-01" / "part-000.csv"
    assert (out / events).read_bytes() == (clean / events).read_bytes()


def test_generate_rejects_a_kind_that_does_not_fit_the_dataset(
    params_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ml.data.corrupt import CORRUPTION_KINDS

    kind, datasets = next((k, d) for k, d in CORRUPTION_KINDS.items() if set(d) != set(DATASETS))
    other = next(ds for ds in DATASETS if ds not in datasets)
    out = tmp_path / "out"
    argv = ["generate", "--params", str(params_file), "--out", str(out)]
    assert ml.cli.main([*argv, "--corrupt", kind, "--corrupt-dataset", other]) == 4
    assert "applies to" in capsys.readouterr().err
    assert not out.exists()
