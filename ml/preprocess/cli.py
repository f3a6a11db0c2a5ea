"""`python -m ml preprocess intent|recsys`."""

from __future__ import annotations

import argparse
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
