"""`python -m ml drift <intent|recommender>`: compare new data with the champion's training data.

Exit code 0 either way; the result's ``drifted`` says whether a threshold was passed (the
drift_monitor DAG branches on it).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ml.core.errors import ConfigError
from ml.core.families import FAMILY_NAMES
from ml.monitoring.options import DriftRunOptions

if TYPE_CHECKING:
    from ml.core.commands import CommandTree
    from ml.core.config import Params

FAMILIES = FAMILY_NAMES

_OPTIONS = DriftRunOptions.model_fields


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model-path",
        help="local HF folder for utterance embeddings (default: intent.train.model_path, "
        "else all-MiniLM-L6-v2)",
    )
    parser.add_argument(
        "--sample",
        type=int,
        default=_OPTIONS["sample"].default,
        help="utterances per side to embed (%(default)s)",
    )
    parser.add_argument(
        "--recent-days",
        type=int,
        default=1,
        help="dates compared when the champion's training dates are unknown (%(default)s)",
    )
    parser.add_argument(
        "--ignore-champion",
        action="store_true",
        help="compare the newest --recent-days with earlier validated data, whatever the champion",
    )
    parser.add_argument("--no-mlflow", action="store_true", help="do not log a run to MLflow")
    parser.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a drift threshold, e.g. label_tv=0.2 "
        "(see ml.monitoring.drift.DriftThresholds)",
    )


def parse_thresholds(entries: list[str]) -> Any:
    """``["label_tv=0.2"]`` -> DriftThresholds, refusing unknown names and bad values."""
    from pydantic import ValidationError

    from ml.monitoring.drift import DriftThresholds

    values: dict[str, str] = {}
    for entry in entries:
        name, sep, value = entry.partition("=")
        if not sep:
            raise ConfigError(f"--threshold {entry!r} is not of the form NAME=VALUE")
        values[name.strip()] = value.strip()
    try:
        return DriftThresholds(**values)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(f"--threshold: {exc}") from exc


def _run(family: str) -> Any:
    def run(args: argparse.Namespace, params: Params) -> dict[str, Any]:
        from pydantic import ValidationError

        from ml.monitoring.drift import check_drift, log_drift_to_mlflow

        try:
            DriftRunOptions(sample=args.sample, model_path=args.model_path)
        except ValidationError as exc:
            raise ConfigError(f"--sample {args.sample}: {exc.errors()[0]['msg']}") from exc
        thresholds = parse_thresholds(args.threshold)
        result = check_drift(
            family,
            params,
            thresholds=thresholds,
            model_path=args.model_path or params.intent.train.model_path,
            sample=args.sample,
            recent_days=args.recent_days,
            use_champion=not args.ignore_champion,
        )
        if not args.no_mlflow and result["signals"]:
            result["mlflow_run_id"] = log_drift_to_mlflow(params, result)
        return result

    return run


def register(tree: CommandTree) -> None:
    for family in FAMILIES:
        tree.add(
            "drift",
            _run(family),
            family=family,
            configure=_configure,
            help=f"{family}: new data vs the champion's training data; says whether to retrain",
            verb_help="drift monitor: new data vs the champion's training data",
        )
