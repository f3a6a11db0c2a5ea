"""The gate end to end with real GE runs (module-scoped: GE is slow to import, runs are shared).

One landing area holds a clean day 0 and twelve corrupted partitions (one per kind) next to
clean ones; a second, clean world must pass untouched; re-runs are no-ops.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ml.core.errors import DataValidationError
from ml.data.corrupt import CORRUPTION_KINDS, corrupt_partition
from ml.validation.partitions import PartitionsQuarantined, validate_landing, validate_partition
from ml.validation.report import TABLE

from .conftest import NOW, make_params, snapshot, write_world

# kind -> (dataset, date, expected failed (rule, column), text that must be in the message)
PLAN: dict[str, tuple[str, str, tuple[str, str], str]] = {
    "unknown_label": (
        "utterances",
        "2026-11-02",
        ("expect_column_values_to_be_in_set", "intent"),
        "teleport_my_parcel",
    ),
    "label_distribution_shift": (
        "utterances",
        "2026-11-03",
        ("expect_column_max_to_be_between", "intent"),
        "total variation",
    ),
    "overlong_text": (
        "utterances",
        "2026-11-04",
        ("expect_column_value_lengths_to_be_between", "text"),
        "text_max_chars",
    ),
    "non_utf8": ("utterances", "2026-11-05", ("utf8_encoding", TABLE), "byte offset"),
    "duplicate_events": (
        "events",
        "2026-11-02",
        ("expect_column_values_to_be_unique", "event_id"),
        "no duplicate event ids",
    ),
    "unknown_item_ids": (
        "events",
        "2026-11-03",
        ("expect_column_values_to_be_in_set", "item_id"),
        "GHOST-",
    ),
    "future_timestamps": (
        "events",
        "2026-11-04",
        ("expect_column_values_to_be_between", "timestamp"),
        "not in the future",
    ),
    "null_ids": (
        "events",
        "2026-11-05",
        ("expect_column_values_to_not_be_null", "event_id"),
        "never null",
    ),
    "missing_column": ("catalog", "2026-11-06", ("required_column", "price"), "missing"),
    "wrong_type": ("catalog", "2026-11-07", ("parse_float", "price"), "not-a-number"),
    "empty_file": ("catalog", "2026-11-08", ("non_empty_file", TABLE), "empty"),
    "truncated_file": ("catalog", "2026-11-09", ("complete_last_row", TABLE), "truncated"),
}


def test_the_plan_covers_every_corruption_kind() -> None:
    assert set(PLAN) == set(CORRUPTION_KINDS) and len(PLAN) >= 12


@pytest.fixture(scope="module")
def corrupted_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Days 0-4 of a small shop plus catalog-only days 5-8 (copies of day 0's catalog), with one
    corruption per kind; validated in one run."""
    root = tmp_path_factory.mktemp("corrupted")
    params = make_params(root)
    landing = params.paths.landing
    write_world(params, days=5)
    for day in ("2026-11-06", "2026-11-07", "2026-11-08", "2026-11-09"):
        shutil.copytree(
            landing / "catalog" / "date=2026-11-01", landing / "catalog" / f"date={day}"
        )
    for seed, (kind, (dataset, day, _, _)) in enumerate(PLAN.items()):
        corrupt_partition(landing / dataset / f"date={day}", dataset, kind, seed=seed)
    bad = {(ds, day) for ds, day, _, _ in PLAN.values()}
    clean = {
        (ds, p.name.removeprefix("date=")): snapshot(p)
        for ds in ("catalog", "events", "utterances")
        for p in sorted((landing / ds).iterdir())
        if (ds, p.name.removeprefix("date=")) not in bad
    }
    with pytest.raises(PartitionsQuarantined) as caught:
        validate_landing(params, now=NOW)
    return {"params": params, "error": caught.value, "clean": clean}


def _entry(summary: dict[str, Any], dataset: str, day: str) -> dict[str, Any]:
    [entry] = [p for p in summary["partitions"] if p["dataset"] == dataset and p["date"] == day]
    return entry


def test_clean_partitions_of_the_same_run_are_accepted_untouched(
    corrupted_run: dict[str, Any],
) -> None:
    params, clean = corrupted_run["params"], corrupted_run["clean"]
    summary = corrupted_run["error"].summary
    assert summary["counts"] == {"accepted": len(clean), "quarantined": len(PLAN), "skipped": 0}
    for (dataset, day), files in clean.items():
        assert _entry(summary, dataset, day)["status"] == "accepted"
        landing = params.paths.landing / dataset / f"date={day}"
        assert snapshot(landing) == files, "a valid landing partition was modified"
        validated = params.paths.validated / dataset / f"date={day}"
        if dataset == "utterances":  # texts are scrubbed of personal data; the rest is kept
            kept = pd.read_csv(validated / "part-000.csv", dtype=str, keep_default_na=False)
            raw = pd.read_csv(io.BytesIO(files["part-000.csv"]), dtype=str, keep_default_na=False)
            assert kept.drop(columns="text").equals(raw.drop(columns="text"))
            changed = kept["text"] != raw["text"]
            assert kept.loc[changed, "text"].str.contains("<ADDRESS>").all()
        else:
            assert (validated / "part-000.csv").read_bytes() == files["part-000.csv"]
        report = json.loads((validated / "validation.json").read_text())
        assert report["success"] is True and report["status"] == "accepted"
        assert not (params.paths.quarantine / dataset / f"date={day}").exists()


@pytest.mark.parametrize("kind", sorted(PLAN))
def test_every_corruption_is_quarantined_with_a_clear_reason(
    corrupted_run: dict[str, Any], kind: str
) -> None:
    params = corrupted_run["params"]
    dataset, day, (rule, column), hint = PLAN[kind]
    landing = params.paths.landing / dataset / f"date={day}"
    quarantined = params.paths.quarantine / dataset / f"date={day}"
    assert not landing.exists(), "a failed partition stayed in landing"
    assert (quarantined / "part-000.csv").is_file(), "the bad data must be kept, not deleted"
    report = json.loads((quarantined / "validation.json").read_text())
    assert report["success"] is False and report["status"] == "quarantined"
    failed = [c for c in report["checks"] if not c["success"] and not c["skipped"]]
    matching = [
        c for c in failed if (c["rule"], c["column"]) == (rule, column) and hint in c["message"]
    ]
    assert matching, (
        f"{kind}: expected {rule} on {column}, got {[(c['rule'], c['column']) for c in failed]}"
    )
    message = matching[0]["message"]
    assert str(landing / "part-000.csv") in message and rule in message and hint in message
    if column != TABLE:
        assert f"column '{column}'" in message
    reason = (quarantined / "REASON.txt").read_text()
    assert message in reason
    # The run's error names the partition and the failed rule too.
    assert message in str(corrupted_run["error"])
    assert not (params.paths.validated / dataset / f"date={day}").exists()


def test_distribution_check_was_skipped_only_without_a_reference(
    corrupted_run: dict[str, Any],
) -> None:
    summary = corrupted_run["error"].summary
    first = _entry(summary, "utterances", "2026-11-01")
    assert first["skipped_checks"] == 1
    assert any("label distribution check skipped" in n for n in first["notes"])
    assert isinstance(corrupted_run["error"], DataValidationError)
    assert corrupted_run["error"].exit_code == 3


def test_rerun_skips_validated_and_quarantines_nothing_new(corrupted_run: dict[str, Any]) -> None:
    params = corrupted_run["params"]
    before = snapshot(params.paths.quarantine)
    summary = validate_landing(params, now=NOW)  # bad partitions are gone from landing: passes
    assert summary["counts"] == {
        "accepted": 0,
        "quarantined": 0,
        "skipped": len(corrupted_run["clean"]),
    }
    assert snapshot(params.paths.quarantine) == before


@pytest.fixture(scope="module")
def clean_world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("clean")
    params = make_params(root, data_docs=True)
    write_world(params, days=2)
    before = snapshot(params.paths.landing)
    summary = validate_landing(params, now=NOW)
    return {"params": params, "summary": summary, "before": before}


def test_clean_world_passes_end_to_end_with_data_docs(clean_world: dict[str, Any]) -> None:
    params, summary = clean_world["params"], clean_world["summary"]
    assert summary["counts"] == {"accepted": 6, "quarantined": 0, "skipped": 0}
    assert snapshot(params.paths.landing) == clean_world["before"]
    copied = {k: v for k, v in snapshot(params.paths.validated).items() if k.endswith(".csv")}
    assert copied.keys() == clean_world["before"].keys()
    # Catalog and events are copied byte for byte; utterance texts are scrubbed of personal
    # data (the shop's {address} slot), with a counts-only pii.json beside each partition.
    for key, raw in clean_world["before"].items():
        if key.startswith("utterances/"):
            assert copied[key] != raw and b"<ADDRESS>" in copied[key]
            assert (params.paths.validated / Path(key).parent / "pii.json").is_file()
        else:
            assert copied[key] == raw
    assert not params.paths.quarantine.exists()
    on_disk = json.loads((params.paths.reports / "validation" / "summary.json").read_text())
    assert on_disk["counts"] == summary["counts"]
    assert summary["data_docs"] and Path(summary["data_docs"]).is_file()
    # Events of day 2 reference items launched on day 2: accepted thanks to that day's catalog.
    assert _entry(summary, "events", "2026-11-02")["status"] == "accepted"


def test_redelivered_partition_is_revalidated_and_old_copy_kept(
    clean_world: dict[str, Any],
) -> None:
    params = clean_world["params"]
    landing = params.paths.landing / "events" / "date=2026-11-02"
    original = (landing / "part-000.csv").read_bytes()
    lines = original.decode().splitlines(keepends=True)
    (landing / "part-000.csv").write_text("".join(lines[:-1]), encoding="utf-8")  # one row fewer
    summary = validate_landing(params, dataset="events", now=NOW)
    assert summary["counts"] == {"accepted": 1, "quarantined": 0, "skipped": 1}
    archived = (
        params.paths.validated / "events" / ".superseded" / "date=2026-11-02" / "part-000.csv"
    )
    assert archived.read_bytes() == original


def test_allowed_new_label_passes_and_per_label_minimum_names_labels(
    clean_world: dict[str, Any], tmp_path: Path
) -> None:
    params = clean_world["params"]
    folder = tmp_path / "utterances" / "date=2026-11-03"
    shutil.copytree(params.paths.landing / "utterances" / "date=2026-11-02", folder)
    # Day-2 texts re-dated to day 3, so the partition-date rule holds.
    part = folder / "part-000.csv"
    part.write_text(part.read_text().replace("2026-11-02T", "2026-11-03T"), encoding="utf-8")
    corrupt_partition(folder, "utterances", "unknown_label", seed=0)
    strict = params.model_copy(deep=True)
    strict.validation.allowed_new_labels = ["teleport_my_parcel"]
    strict.validation.min_per_label = 40
    before = snapshot(folder)
    report = validate_partition(folder, "utterances", strict, now=NOW)
    assert snapshot(folder) == before, "validate_partition must not move or change anything"
    by_rule = {(c.rule, c.column): c for c in report.checks if c.suite == "utterances"}
    assert by_rule[("expect_column_values_to_be_in_set", "intent")].success
    [low] = report.failures
    assert (low.rule, low.column, low.suite) == (
        "expect_column_values_to_be_between",
        "intent",
        "utterance_labels",
    )
    assert {"label", "value"} <= set(low.unexpected_examples[0])
    assert all(e["value"] < 40 for e in low.unexpected_examples)
    assert "min_per_label" in low.message
