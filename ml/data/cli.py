"""Commands of the data layer: ``generate`` writes synthetic shop days into the landing area
(optionally breaking one freshly written partition with ``--corrupt`` to demo the validation
gate); ``ingest`` puts new data there from the configured source (ml.data.ingest)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml.core.errors import InputError
from ml.core.schemas import DATASETS

if TYPE_CHECKING:
    from ml.core.commands import CommandTree
    from ml.core.config import Params


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, help="landing folder (default: paths.landing)")
    parser.add_argument(
        "--first-day", type=int, help="first day index (default: generator.first_day)"
    )
    parser.add_argument("--days", type=int, help="number of days (default: generator.days)")
    parser.add_argument(
        "--corrupt", metavar="KIND", help="corrupt one written partition (see ml.data.corrupt)"
    )
    parser.add_argument("--corrupt-dataset", choices=DATASETS, help="dataset to corrupt")
    parser.add_argument(
        "--corrupt-day", type=int, help="day index to corrupt (default: the last day written)"
    )


def _corruptor(args: argparse.Namespace, days: list[int]) -> tuple[int, Callable[..., str]]:
    """Check the --corrupt options before anything is written; returns (day, corrupt_partition)."""
    if not args.corrupt_dataset:
        raise InputError("--corrupt needs --corrupt-dataset (one of: " + ", ".join(DATASETS) + ")")
    day = days[-1] if args.corrupt_day is None else args.corrupt_day
    if day not in days:
        raise InputError(
            f"--corrupt-day {day} is not generated in this run (days {days[0]}..{days[-1]})"
        )
    # Imported here: the corruption module is only needed for the demo of a failing gate.
    try:
        from ml.data.corrupt import CORRUPTION_KINDS, corrupt_partition
    except ImportError as exc:
        raise InputError(
            f"--corrupt is unavailable: cannot import ml.data.corrupt ({exc})"
        ) from exc
    if args.corrupt not in CORRUPTION_KINDS:
        raise InputError(
            f"--corrupt {args.corrupt!r} is unknown; choose one of: {', '.join(CORRUPTION_KINDS)}"
        )
    # CORRUPTION_KINDS may map each kind to the datasets it applies to.
    if (
        isinstance(CORRUPTION_KINDS, Mapping)
        and args.corrupt_dataset not in CORRUPTION_KINDS[args.corrupt]
    ):
        raise InputError(
            f"--corrupt {args.corrupt!r} applies to {', '.join(CORRUPTION_KINDS[args.corrupt])}, "
            f"not to --corrupt-dataset {args.corrupt_dataset}"
        )
    return day, corrupt_partition


def _run(args: argparse.Namespace, params: Params) -> dict[str, Any]:
    from ml.data.synthetic import day_date, generate_world, partition_path

    cfg = params.generator
    n_days = cfg.days if args.days is None else args.days
    first_day = cfg.first_day if args.first_day is None else args.first_day
    if n_days < 1 or first_day < 0:
        raise InputError(f"--days must be >= 1 and --first-day >= 0 (got {n_days}, {first_day})")
    days = list(range(first_day, first_day + n_days))
    if args.corrupt_dataset and not args.corrupt:
        raise InputError("--corrupt-dataset is given without --corrupt KIND")
    corruption = _corruptor(args, days) if args.corrupt else None

    out = args.out or params.paths.landing
    meta = generate_world(cfg, out, first_day=first_day, n_days=n_days)
    result: dict[str, Any] = {
        "out_dir": meta["out_dir"],
        "seed": meta["seed"],
        "dates": meta["dates"],
        "rows": {
            dataset: {"total": sum(per_day.values()), **per_day}
            for dataset, per_day in meta["rows"].items()
        },
    }
    if corruption is not None:
        day, corrupt_partition = corruption
        partition = partition_path(out, args.corrupt_dataset, day_date(cfg, day)).parent
        # Seeded per day, so the same command always breaks the partition the same way.
        description = corrupt_partition(
            partition, args.corrupt_dataset, args.corrupt, cfg.seed + day
        )
        result["corruption"] = {
            "partition": str(partition),
            "kind": args.corrupt,
            "description": description,
        }
    return result


def _ingest_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--first-day", type=int, help="synthetic: first day index (default: generator.first_day)"
    )
    parser.add_argument(
        "--days", type=int, help="synthetic: number of days (default: generator.days)"
    )


def _run_ingest(args: argparse.Namespace, params: Params) -> dict[str, Any]:
    from ml.data.ingest import ingest

    return ingest(params, first_day=args.first_day, n_days=args.days)


def register(tree: CommandTree) -> None:
    tree.add(
        "generate",
        _run,
        help="write seeded synthetic shop days (catalog, events, utterances) as landing partitions",
        configure=_configure,
    )
    tree.add(
        "ingest",
        _run_ingest,
        help="put new data into the landing area (synthetic shop, intent file, drop folder, S3)",
        configure=_ingest_args,
    )
