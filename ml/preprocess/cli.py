"""`python -m ml preprocess intent|recsys` and `python -m ml import-interactions`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ml.core.commands import CommandTree
    from ml.core.config import Params


def _intent(args: argparse.Namespace, params: Params) -> dict[str, Any]:
    from ml.preprocess.intent import preprocess_intent

    out = params.paths.processed / "intent"
    return {
        "output": str(out),
        **preprocess_intent(params.paths.validated, out, params.preprocess.intent),
    }


def _recsys(args: argparse.Namespace, params: Params) -> dict[str, Any]:
    from ml.preprocess.interactions import preprocess_interactions

    out = params.paths.processed / "recsys"
    stats = preprocess_interactions(params.paths.validated, out, params.preprocess.interactions)
    return {"output": str(out), **stats}


def _configure_import(parser: argparse.ArgumentParser) -> None:
    setting = "preprocess.import_interactions"
    parser.add_argument(
        "--interactions",
        type=Path,
        help=f"interactions table, .csv/.tsv/.parquet (default: {setting}.interactions)",
    )
    parser.add_argument(
        "--items", type=Path, help=f"items table, .csv/.tsv/.parquet (default: {setting}.items)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="processed folder, files go to <out>/recsys (default: paths.processed)",
    )


def _import_interactions(args: argparse.Namespace, params: Params) -> dict[str, Any]:
    from ml.preprocess.interactions_import import import_interactions

    out = (args.out or params.paths.processed) / "recsys"
    return import_interactions(
        params.preprocess.import_interactions,
        out,
        interactions=args.interactions,
        items=args.items,
    )


def register(tree: CommandTree) -> None:
    verb_help = "turn validated partitions into model-ready Parquet"
    tree.add(
        "preprocess",
        _intent,
        family="intent",
        help="utterances -> train/val/test split by text hash, label map",
        verb_help=verb_help,
    )
    tree.add(
        "preprocess",
        _recsys,
        family="recsys",
        help="catalog + events -> item table, id maps, leave-last-out sequences",
    )
    tree.add(
        "import-interactions",
        _import_interactions,
        configure=_configure_import,
        help="an interactions table + an items table (CSV/Parquet) -> processed recsys files",
    )
