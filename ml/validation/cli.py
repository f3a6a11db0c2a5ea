"""`python -m ml validate`: the data validation gate on landing partitions.

Without ``--partition`` every landing partition is validated and acted on (accepted ones are
copied to paths.validated, failed ones moved to paths.quarantine). With ``--partition PATH``
one partition is only checked and reported; nothing moves. Exit code 3 when anything failed.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml.core.errors import InputError
from ml.core.schemas import DATASETS

if TYPE_CHECKING:
    from ml.core.commands import CommandTree
    from ml.core.config import Params


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", choices=DATASETS, help="only this dataset (default: all)")
    parser.add_argument(
        "--partition",
        type=Path,
        help="check one partition folder (date=YYYY-MM-DD) and report; moves nothing",
    )


def _print_summary(summary: dict[str, Any]) -> None:
    for entry in summary["partitions"]:
        name = f"{entry['dataset']:<10} {Path(entry['partition']).name}"
        where = f" -> {entry['destination']}" if entry["status"] != "skipped" else ""
        print(f"{entry['status']:<11} {name}{where}")
        for line in entry["failures"]:
            print(f"    {line}")
    counts = summary["counts"]
    print(
        f"validated {counts['accepted'] + counts['quarantined']} partition(s): "
        f"{counts['accepted']} accepted, {counts['quarantined']} quarantined, "
        f"{counts['skipped']} unchanged since validated (skipped)"
    )


def _run(args: argparse.Namespace, params: Params) -> dict[str, Any]:
    from ml.core.errors import DataValidationError
    from ml.validation.partitions import PartitionsQuarantined, validate_landing, validate_partition

    if args.partition is not None:
        dataset = args.dataset or args.partition.parent.name
        if dataset not in DATASETS:
            raise InputError(
                f"--partition {args.partition}: cannot tell the dataset from the parent folder "
                f"{dataset!r}; pass --dataset ({', '.join(DATASETS)})"
            )
        report = validate_partition(args.partition, dataset, params)
        for line in report.notes:
            print(f"note: {line}")
        if not report.success:
            raise DataValidationError(
                f"{dataset} {args.partition} failed validation (not moved):\n"
                + "\n".join(f"    {line}" for line in report.failure_lines())
            )
        return {
            "partition": str(args.partition),
            "dataset": dataset,
            "success": True,
            "rows": report.rows,
            "checks": len(report.checks),
        }
    try:
        summary = validate_landing(params, dataset=args.dataset)
    except PartitionsQuarantined as exc:
        _print_summary(exc.summary)
        raise
    _print_summary(summary)
    return {
        "counts": summary["counts"],
        "summary": summary["summary_path"],
        "data_docs": summary["data_docs"],
        # Personal data scrubbed from utterance texts, by type (counts, never values).
        "pii": summary["pii"],
        "raw_pruned": summary["raw_pruned"],
    }


def register(tree: CommandTree) -> None:
    tree.add(
        "validate",
        _run,
        help="validate landing partitions with the Great Expectations suites; quarantine failures",
        configure=_configure,
    )
