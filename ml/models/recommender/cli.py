"""Recommender steps: ``train recommender``, ``evaluate recommender``, ``predict recommender``
and ``import-recbole`` (RecBole atomic files -> the processed recsys layout)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ml.core.commands import CommandTree
    from ml.core.config import Params


def _paths(parser: argparse.ArgumentParser, *, model_out: bool = False) -> None:
    parser.add_argument(
        "--processed", type=Path, help="processed folder holding recsys/ (default: paths.processed)"
    )
    flag = "--out" if model_out else "--model-dir"
    parser.add_argument(
        flag, dest="model_dir", type=Path, help="model folder (default: <paths.models>/recommender)"
    )


def _configure_train(parser: argparse.ArgumentParser) -> None:
    _paths(parser, model_out=True)


def _train(args: argparse.Namespace, params: Params) -> dict[str, Any]:
    from ml.models.recommender.pipeline import train_step

    return train_step(params, args.processed, args.model_dir)


def _configure_evaluate(parser: argparse.ArgumentParser) -> None:
    _paths(parser)
    parser.add_argument(
        "--reports",
        type=Path,
        help="where metrics.json/per_user.parquet go (default: <paths.reports>/recommender)",
    )
    parser.add_argument("--split", choices=("test", "val"), default="test")
    parser.add_argument(
        "--no-mlflow", action="store_true", help="do not log the results to the training run"
    )


def _evaluate(args: argparse.Namespace, params: Params) -> dict[str, Any]:
    from ml.models.recommender.pipeline import evaluate_step

    return evaluate_step(
        params,
        args.processed,
        args.model_dir,
        args.reports,
        args.split,
        log_to_mlflow=not args.no_mlflow,
    )


def _configure_predict(parser: argparse.ArgumentParser) -> None:
    _paths(parser)
    parser.add_argument(
        "--split",
        choices=("test", "val"),
        default="test",
        help="users to recommend for (default: %(default)s)",
    )
    parser.add_argument("--k", type=int, help="list length (default: recommender.top_k)")
    parser.add_argument(
        "--out",
        type=Path,
        help="Parquet file (default: <models>/recommender/predictions/top<K>_<split>.parquet)",
    )
    parser.add_argument(
        "--history",
        nargs="*",
        metavar="ITEM_ID",
        help="recommend for this one history of item_ids instead of a split",
    )


def _predict(args: argparse.Namespace, params: Params) -> dict[str, Any]:
    from ml.models.recommender.pipeline import predict_history, predict_step

    if args.history is not None:
        return predict_history(params, args.history, args.k, args.model_dir)
    return predict_step(params, args.processed, args.model_dir, args.out, args.split, args.k)


def _configure_import(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir",
        required=True,
        type=Path,
        help="folder of RecBole atomic files, e.g. ../shared/data/amazon_scientific",
    )
    parser.add_argument("--out", type=Path, help="processed folder (default: paths.processed)")


def _import(args: argparse.Namespace, params: Params) -> dict[str, Any]:
    from ml.models.recommender.recbole import import_recbole

    return import_recbole(args.dir, args.out or params.paths.processed)


def register(tree: CommandTree) -> None:
    tree.add(
        "train",
        _train,
        family="recommender",
        configure=_configure_train,
        help="train the text-aware sequential recommender, log and register it in MLflow",
    )
    tree.add(
        "evaluate",
        _evaluate,
        family="recommender",
        configure=_configure_evaluate,
        help="full-catalog evaluation vs baselines: metrics.json + per_user.parquet",
    )
    tree.add(
        "predict",
        _predict,
        family="recommender",
        configure=_configure_predict,
        help="batch top-K for every user to Parquet, or one --history",
    )
    tree.add(
        "import-recbole",
        _import,
        configure=_configure_import,
        help="RecBole atomic files (Amazon/UniSRec) -> processed recsys Parquet files",
    )
