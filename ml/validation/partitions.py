"""The validation gate: landing partitions are accepted (copied on) or quarantined (moved aside).

``validate_partition`` only looks; ``validate_landing`` acts on what it finds. Nothing is ever
deleted: accepted data stays in landing and is copied to ``paths.validated``; failed data is
moved to ``paths.quarantine`` (a numbered suffix instead of overwriting), each with its
``validation.json``. Re-running on unchanged data is a no-op.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ml.core.errors import DataValidationError
from ml.core.progress import progress
from ml.core.schemas import DATASETS
from ml.validation.gx_runner import GxRunner
from ml.validation.label_stats import label_table
from ml.validation.reading import partition_files, read_partition
from ml.validation.report import TABLE, CheckResult, PartitionReport
from ml.validation.suite_parameters import dated_partitions, partition_date, suite_inputs

if TYPE_CHECKING:
    from ml.core.config import Params
    from ml.core.config.privacy import PrivacyConfig

log = logging.getLogger(__name__)

REPORT_NAME = "validation.json"
REASON_NAME = "REASON.txt"
SUPERSEDED = ".superseded"  # earlier validated versions of a re-delivered partition


class PartitionsQuarantined(DataValidationError):
    """Some partitions failed validation and were quarantined; ``summary`` has the run."""

    def __init__(self, message: str, summary: dict[str, Any]):
        super().__init__(message)
        self.summary = summary


def content_sha256(files: list[Path]) -> str | None:
    """One hash over a partition's data files (names and bytes), None if there are none."""
    existing = [f for f in files if f.is_file()]
    if not existing:
        return None
    digest = hashlib.sha256()
    for file in sorted(existing):
        digest.update(file.name.encode() + b"\0")
        digest.update(file.read_bytes())
    return digest.hexdigest()


def validate_partition(
    partition_dir: Path,
    dataset: str,
    params: Params,
    *,
    now: datetime | None = None,
    runner: GxRunner | None = None,
) -> PartitionReport:
    """Check one partition (read rules, then the dataset's GE suites); moves nothing.

    ``runner`` lets a caller validating many partitions share one GE context.
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {list(DATASETS)}")
    now = now or datetime.now(UTC)
    partition_dir = Path(partition_dir)
    outcome = read_partition(partition_dir, dataset)
    day = partition_date(partition_dir)
    report = PartitionReport(
        dataset=dataset,
        partition=str(partition_dir),
        date=day,
        files=[str(f) for f in outcome.files],
        content_sha256=content_sha256(outcome.files),
        validated_at=datetime.now(UTC).isoformat(),
        checks=list(outcome.checks),
    )
    if day is None:
        report.checks.append(
            CheckResult(
                rule="partition_folder",
                column=TABLE,
                success=False,
                description="partition folder must be named date=YYYY-MM-DD",
                message=f"{partition_dir}: table: rule partition_folder (partition folder must be "
                f"named date=YYYY-MM-DD) failed: got {partition_dir.name!r}",
            )
        )
    if outcome.frame is None or day is None:
        report.notes.append("GE suites not run: the partition could not be read as a table")
        return report
    frame = outcome.frame
    report.rows = len(frame)
    if dataset == "utterances" and params.privacy.enabled and "text" in frame.columns:
        from ml.validation.pii import mask_for_validation

        # GE quotes failing values in validation.json, REASON.txt and its Data Docs.
        masked = mask_for_validation(
            frame["text"], params.privacy, params.validation.text_max_chars
        )
        frame = frame.assign(text=pd.Series(masked, index=frame.index, dtype=frame["text"].dtype))
    label = str(outcome.files[0]) if len(outcome.files) == 1 else str(partition_dir)
    inputs = suite_inputs(dataset, day, params, now)
    report.notes.extend(inputs.notes)
    report.notes.extend(f"skipped: {why}" for why in inputs.skipped.values())
    runner = runner or GxRunner.from_params(params)
    run_name = f"{dataset}.{partition_dir.name}"  # GE store keys may not hold "/"
    report.checks += runner.run(
        dataset,
        frame,
        inputs.parameters,
        skipped=inputs.skipped,
        file_label=label,
        run_name=run_name,
    )
    if dataset == "utterances":
        table = label_table(frame["intent"], inputs.reference_counts, inputs.expected_labels)
        report.checks += runner.run(
            "utterance_labels",
            table,
            inputs.parameters,
            skipped=inputs.skipped,
            file_label=label,
            run_name=run_name,
        )
    return report


def landing_partitions(landing: Path, dataset: str) -> list[Path]:
    """Partition folders of ``dataset`` in landing: by date, then misnamed ones (which fail)."""
    base = landing / dataset
    if not base.is_dir():
        return []
    dated = [folder for _, folder in dated_partitions(landing, dataset)]
    # A folder that is not date=YYYY-MM-DD is still a delivery: validate it (it fails by name).
    odd = sorted(
        p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".") and p not in dated
    )
    return dated + odd


def _free_path(target: Path) -> Path:
    """``target`` or, if taken, ``target__2``, ``target__3``, ... (never overwrite)."""
    if not target.exists():
        return target
    n = 2
    while (candidate := target.with_name(f"{target.name}__{n}")).exists():
        n += 1
    return candidate


def _already_validated(folder: Path, sha: str | None) -> bool:
    report = folder / REPORT_NAME
    if sha is None or not report.is_file():
        return False
    try:
        return json.loads(report.read_text(encoding="utf-8")).get("content_sha256") == sha
    except (json.JSONDecodeError, OSError):
        return False


def _accept(
    report: PartitionReport,
    source: Path,
    validated_root: Path,
    privacy: PrivacyConfig | None = None,
) -> Path:
    """Copy an accepted partition to ``validated_root``; utterance texts are scrubbed of
    personal data on the way (``privacy``), with a ``pii.json`` of counts beside the report."""
    target = validated_root / report.dataset / source.name
    if target.exists():
        # A re-delivered partition with new content: keep the old validated copy aside.
        archive = _free_path(validated_root / report.dataset / SUPERSEDED / source.name)
        archive.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(target), str(archive))
        report.notes.append(f"previous validated version moved to {archive}")
    target.mkdir(parents=True)
    if report.dataset == "utterances" and privacy is not None and privacy.enabled:
        from ml.validation.pii import scrub_partition

        report.pii = scrub_partition(partition_files(source), target, privacy)
    else:
        for file in partition_files(source):
            shutil.copy2(file, target / file.name)
    report.status, report.destination = "accepted", str(target)
    report.write(target / REPORT_NAME)
    return target


def _quarantine(report: PartitionReport, source: Path, quarantine_root: Path) -> Path:
    target = _free_path(quarantine_root / report.dataset / source.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.move(str(source), str(target))
    else:  # nothing was delivered: the quarantine entry records that
        target.mkdir(parents=True)
    report.status, report.destination = "quarantined", str(target)
    report.write(target / REPORT_NAME)
    reason = [
        f"Quarantined by the shopflow validation gate at {report.validated_at}.",
        f"Partition: {source} ({report.dataset})",
        "",
        "Failed rules:",
        *(f"- {line}" for line in report.failure_lines()),
        "",
        f"Details per rule: {REPORT_NAME}. To retry, fix the data and move this folder back to",
        f"{source}, then run `python -m ml validate`.",
    ]
    (target / REASON_NAME).write_text("\n".join(reason) + "\n", encoding="utf-8")
    return target


def _summary_entry(report: PartitionReport) -> dict[str, Any]:
    return {
        "dataset": report.dataset,
        "date": report.date,
        "partition": report.partition,
        "status": report.status,
        "destination": report.destination,
        "rows": report.rows,
        "failures": report.failure_lines(),
        "skipped_checks": sum(c.skipped for c in report.checks),
        "notes": report.notes,
        "pii": report.pii,
    }


def pii_totals(reports: list[PartitionReport]) -> dict[str, int]:
    """Personal-data spans scrubbed in this run, by entity type (counts only)."""
    totals: dict[str, int] = {}
    for report in reports:
        for entity, count in ((report.pii or {}).get("counts") or {}).items():
            totals[entity] = totals.get(entity, 0) + int(count)
    return totals


def prune_raw_landing(params: Params, now: datetime) -> list[str]:
    """Delete raw utterance landing partitions older than ``privacy.raw_retention_days`` whose
    identical content was accepted (its scrubbed copy is in paths.validated); returns them.

    A partition not (or not identically) validated is never deleted; quarantine is untouched.
    """
    days = params.privacy.raw_retention_days
    if days is None:
        return []
    cutoff = (now - timedelta(days=days)).date().isoformat()
    pruned = []
    for day, folder in dated_partitions(params.paths.landing, "utterances"):
        validated = params.paths.validated / "utterances" / folder.name
        if day < cutoff and _already_validated(validated, content_sha256(partition_files(folder))):
            shutil.rmtree(folder)
            pruned.append(str(folder))
            log.info("raw partition %s pruned (privacy.raw_retention_days=%d)", folder, days)
    return pruned


def validate_landing(
    params: Params, *, dataset: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Validate every landing partition (catalog, events, utterances; by date) and act on it.

    Accepted partitions are copied to ``paths.validated``, failed ones moved to
    ``paths.quarantine``; a run summary goes to ``paths.reports/validation/summary.json``.
    Raises :class:`PartitionsQuarantined` (a DataValidationError) naming every failure.
    """
    datasets = DATASETS if dataset is None else (dataset,)
    for ds in datasets:
        if ds not in DATASETS:
            raise ValueError(f"unknown dataset {ds!r}; expected one of {list(DATASETS)}")
    now = now or datetime.now(UTC)
    paths = params.paths
    # Catalog first: events are checked against the catalog accepted before them.
    todo = [(ds, folder) for ds in datasets for folder in landing_partitions(paths.landing, ds)]
    reports: list[PartitionReport] = []
    runner: GxRunner | None = None
    for ds, folder in progress(
        todo, desc="validate partitions", unit="partition", disable=not todo
    ):
        sha = content_sha256(partition_files(folder))
        validated = paths.validated / ds / folder.name
        if _already_validated(validated, sha):
            skipped = PartitionReport(
                dataset=ds,
                partition=str(folder),
                date=partition_date(folder),
                files=[str(f) for f in partition_files(folder)],
                content_sha256=sha,
                validated_at=datetime.now(UTC).isoformat(),
                status="skipped",
                destination=str(validated),
                notes=["identical content already validated"],
            )
            reports.append(skipped)
            continue
        runner = runner or GxRunner.from_params(params)
        report = validate_partition(folder, ds, params, now=now, runner=runner)
        if report.success:
            _accept(report, folder, paths.validated, params.privacy)
        else:
            _quarantine(report, folder, paths.quarantine)
        log.info("%s %s: %s", ds, folder.name, report.status)
        reports.append(report)
    summary = {
        "run_at": datetime.now(UTC).isoformat(),
        "now": now.isoformat(),
        "datasets": list(datasets),
        "counts": {
            status: sum(r.status == status for r in reports)
            for status in ("accepted", "quarantined", "skipped")
        },
        "partitions": [_summary_entry(r) for r in reports],
        "data_docs": runner.data_docs_index() if runner else None,
        "pii": pii_totals(reports),
        "raw_pruned": prune_raw_landing(params, now),
    }
    summary_path = paths.reports / "validation" / "summary.json"
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    summary_path.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    summary["summary_path"] = str(summary_path)
    failed = [r for r in reports if r.status == "quarantined"]
    if failed:
        lines = [f"{len(failed)} partition(s) failed validation and were quarantined:"]
        for r in failed:
            lines.append(f"* {r.dataset} {Path(r.partition).name} -> {r.destination}")
            lines.extend(f"    {line}" for line in r.failure_lines())
        raise PartitionsQuarantined("\n".join(lines), summary)
    return summary
