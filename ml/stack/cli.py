"""Commands of the stack layer: ``preflight`` (can this deployment reach its stores?) and
``restore-data <family>`` (pull the data a model version was trained on from the DVC remote)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml.core.errors import InputError

if TYPE_CHECKING:
    from ml.core.commands import CommandTree
    from ml.core.config import Params


def _preflight_args(parser: argparse.ArgumentParser) -> None:
    from ml.stack.preflight import CHECKS

    parser.add_argument(
        "--check",
        dest="checks",
        action="append",
        choices=CHECKS,
        help="run only this check (repeatable; default: all)",
    )
    parser.add_argument("--dvc-remote", help="DVC remote to check (default: the default remote)")
    parser.add_argument(
        "--project-dir", type=Path, default=Path("."), help="DVC project (default: %(default)s)"
    )


def _run_preflight(args: argparse.Namespace, params: Params) -> dict[str, Any]:
    from ml.stack.preflight import CHECKS, preflight

    return preflight(params, args.checks or CHECKS, args.project_dir, args.dvc_remote)


def _restore_args(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--version", help="model version number")
    which.add_argument("--alias", default=None, help="model alias (default: champion)")
    parser.add_argument("--remote", help="DVC remote (default: DVC's default remote)")


def _restore(family: str) -> Any:
    def run(args: argparse.Namespace, params: Params) -> dict[str, Any]:
        from ml.stack import model_store
        from ml.stack.data_versions import DATA_VERSION_TAG, STAGE_OF_FAMILY, restore_stage

        client = model_store.get_client(params)
        name = model_store.model_name(params, family)
        if args.version:
            version = client.get_model_version(name, str(args.version))
        else:
            alias = args.alias or model_store.CHAMPION
            found = model_store.get_alias(client, name, alias)
            if found is None:
                raise InputError(f"{name} has no version with alias {alias!r}")
            version = found
        raw = (version.tags or {}).get(DATA_VERSION_TAG)
        if not raw:
            raise InputError(
                f"{name} v{version.version} has no {DATA_VERSION_TAG} tag: it was not trained "
                "by a retrain DAG in dvc preprocess mode with a DVC remote"
            )
        result = restore_stage(Path.cwd(), STAGE_OF_FAMILY[family], json.loads(raw), args.remote)
        return {"model": name, "version": version.version, **result}

    return run


def register(tree: CommandTree) -> None:
    tree.add(
        "preflight",
        _run_preflight,
        configure=_preflight_args,
        help="check the tracking store, artifact store and DVC remote with the credentials in "
        "force (exit 7 naming the setting to fix)",
    )
    for family in ("intent", "recommender"):
        tree.add(
            "restore-data",
            _restore(family),
            family=family,
            help=f"pull the {family} data a model version was trained on (from the DVC remote)",
            verb_help="restore a model version's training data from the DVC remote",
            configure=_restore_args,
        )
