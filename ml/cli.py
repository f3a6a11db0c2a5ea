"""`python -m ml <step> ...`: the one entry point that DVC stages and Airflow tasks both call.

Each domain module registers its steps on a :class:`CommandTree` (``register(tree)``) and keeps
heavy imports (torch, mlflow, great_expectations) inside its handlers, so ``--help`` is fast.
A handler gets the parsed arguments and the validated :class:`~ml.core.config.Params` and returns a
small JSON-able dict of metadata, which is printed (and written with ``--output-json``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml.core.commands import CommandTree
from ml.core.errors import ShopflowError

if TYPE_CHECKING:
    from ml.core.config import Params

# Modules that contribute steps, in the order they appear in --help.
COMMAND_MODULES = [
    "ml.data.cli",
    "ml.validation.cli",
    "ml.preprocess.cli",
    "ml.models.intent.cli",
    "ml.models.recommender.cli",
    "ml.release.cli",
    "ml.monitoring.cli",
    "ml.stack.cli",
    "ml.serving.cli",
]


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--params", default="params.yaml", help="params file (default: %(default)s)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a param, e.g. --set intent.train.epochs=2 (repeatable)",
    )
    parser.add_argument("--output-json", type=Path, help="also write the step's result here")


def build_parser() -> argparse.ArgumentParser:
    tree = CommandTree()
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(tree)
    parser = argparse.ArgumentParser(
        prog="python -m ml",
        description="shopflow pipeline steps (each is also a DVC stage and an Airflow task).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    verbs = parser.add_subparsers(dest="verb", metavar="<step>", required=True)
    for verb, families in tree.verbs.items():
        if list(families) == [None]:
            command = families[None]
            sub = verbs.add_parser(verb, help=command.help, description=command.help)
            _common_options(sub)
            if command.configure:
                command.configure(sub)
            sub.set_defaults(_handler=command.run)
            continue
        sub = verbs.add_parser(verb, help=tree.verb_help[verb], description=tree.verb_help[verb])
        fam_parsers = sub.add_subparsers(dest="family", metavar="<model>", required=True)
        for family, command in families.items():
            assert family is not None, f"step {verb} mixes a plain and a per-model form"
            fp = fam_parsers.add_parser(family, help=command.help, description=command.help)
            _common_options(fp)
            if command.configure:
                command.configure(fp)
            fp.set_defaults(_handler=command.run)
    return parser


def _set_offline_defaults() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def run_step(argv: list[str], params: Params | None = None) -> dict[str, Any]:
    """Run one step as the command line would and return its result dict.

    This is what Airflow tasks call: the same parser, params loading and handler as
    ``python -m ml``, but errors propagate as exceptions (so the task fails with the message)
    and the result comes back as a value (an XCom). ``params``: already loaded and validated
    (a task loads params.yaml plus its run's overrides once); then ``argv`` carries no
    ``--params``/``--set``.
    """
    _set_offline_defaults()
    args = build_parser().parse_args(argv)
    if params is None:
        from ml.core.config import load_params

        params = load_params(args.params, args.overrides)
    elif args.overrides:
        raise ValueError("run_step: pass overrides in the loaded params, not as --set")
    return args._handler(args, params) or {}


def main(argv: list[str] | None = None) -> int:
    _set_offline_defaults()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from ml.core.config import load_params

    try:
        params = load_params(args.params, args.overrides)
        result = args._handler(args, params)
    except ShopflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if result is not None:
        text = json.dumps(result, indent=2, default=str, sort_keys=True)
        print(text)
        if args.output_json:
            args.output_json.parent.mkdir(parents=True, exist_ok=True)
            args.output_json.write_text(text + "\n", encoding="utf-8")
    return 0
