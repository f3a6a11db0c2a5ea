"""`python -m ml train|evaluate|predict intent`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ml.core.errors import InputError

if TYPE_CHECKING:
    from ml.core.commands import CommandTree
    from ml.core.config import Params


def _train(args: argparse.Namespace, params: Params) -> dict[str, Any]:
    from ml.models.intent.train import train_intent

    resume = False if args.no_resume else (True if args.resume else None)
    out = params.paths.models / "intent"
    result = train_intent(
        params, params.paths.processed, out, resume=resume, register=not args.no_register
    )
    return {"output": str(out), **result}


def _configure_train(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--resume",
        action="store_true",
        help="resume from the checkpoint (default: automatic when it matches)",
    )
    group.add_argument("--no-resume", action="store_true", help="ignore any checkpoint")
    parser.add_argument(
        "--no-register",
        action="store_true",
        help="log the model to the run without registering a version",
    )


def _evaluate(args: argparse.Namespace, params: Params) -> dict[str, Any]:
    from ml.models.intent.evaluate import evaluate_intent

    return evaluate_intent(
        params,
        params.paths.processed,
        params.paths.models / "intent",
        params.paths.reports / "intent",
        log_to_mlflow=not args.no_mlflow,
    )


def _configure_evaluate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-mlflow",
        action="store_true",
        help="only write the report files, log nothing to the training run",
    )


def _predict(args: argparse.Namespace, params: Params) -> dict[str, Any]:
    from ml.models.intent.predict import check_text, predict_file, predict_text
    from ml.models.intent.scoring import load_intent_model
    from ml.stack.tracking import configure_mlflow

    if (args.text is None) == (args.input is None):
        raise InputError("give either one TEXT or --input FILE (not both)")
    if args.input is not None and args.output is None:
        raise InputError("--input needs --output (a .parquet or .csv path)")
    if args.text is not None:
        check_text(args.text)  # before the (slow) model load
    source = args.model or str(params.paths.models / "intent" / "model")
    if source.startswith(("models:/", "runs:/")):
        configure_mlflow(params.mlflow, params.mlflow.intent_experiment)
    model = load_intent_model(source)
    if args.text is not None:
        return {"model": source, **predict_text(model, args.text)}
    return {
        "model": source,
        **predict_file(model, args.input, args.output, text_column=args.text_column),
    }


def _configure_predict(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", nargs="?", help="one utterance to classify")
    parser.add_argument(
        "--model",
        help="models:/intent-classifier@champion, models:/NAME/VERSION, "
        "runs:/..., or a local model folder (default: <models>/intent/model)",
    )
    parser.add_argument("--input", help="batch mode: a .csv/.tsv/.parquet file")
    parser.add_argument("--text-column", default="text", help="column holding the texts")
    parser.add_argument("--output", help="batch mode: where to write predictions")


def register(tree: CommandTree) -> None:
    tree.add(
        "train",
        _train,
        family="intent",
        configure=_configure_train,
        help="fine-tune the intent classifier, log to MLflow, register a new version",
        verb_help="train a model",
    )
    tree.add(
        "evaluate",
        _evaluate,
        family="intent",
        configure=_configure_evaluate,
        help="test-split metrics vs majority and frozen-encoder baselines, predictions",
        verb_help="evaluate a trained model on the frozen test split",
    )
    tree.add(
        "predict",
        _predict,
        family="intent",
        configure=_configure_predict,
        help="classify one utterance or score a CSV/Parquet file",
        verb_help="score inputs with a model",
    )
