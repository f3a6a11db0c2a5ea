"""CLI steps of the gate and the registry.

    python -m ml gate <intent|recommender>
    python -m ml registry status|history <intent|recommender>
    python -m ml registry promote <intent|recommender> [--version N] [--force] [--reason TEXT]
    python -m ml registry rollback <intent|recommender> [--reason TEXT]

``gate`` only decides (an Airflow branch reads its output); ``registry promote`` acts, and by
default only on a version whose gate decision tag says ``promote``.
"""

from __future__ import annotations

import argparse
from typing import Any

from ml.core.families import FAMILY_NAMES

FAMILIES = FAMILY_NAMES


def _gate(family: str) -> Any:
    def run(args: argparse.Namespace, params: Any) -> dict[str, Any]:
        from ml.release.gate.run import run_gate

        return run_gate(family, params)

    return run


def _model_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", choices=FAMILIES, help="model family")


def _promote_args(parser: argparse.ArgumentParser) -> None:
    _model_arg(parser)
    parser.add_argument("--version", help="version to promote (default: registration.json's)")
    parser.add_argument(
        "--force",
        action="store_true",
        help="promote even without a gate.decision=promote tag on the version",
    )
    parser.add_argument("--reason", default="", help="why (kept in the promotion history)")
    parser.add_argument("--pipeline-run", help="pipeline run id (default: Airflow's, if any)")


def _rollback_args(parser: argparse.ArgumentParser) -> None:
    _model_arg(parser)
    parser.add_argument("--reason", default="", help="why (kept in the promotion history)")
    parser.add_argument("--pipeline-run", help="pipeline run id (default: Airflow's, if any)")


def _status(args: argparse.Namespace, params: Any) -> dict[str, Any]:
    from ml.release import registry
    from ml.stack import model_store

    client = model_store.get_client(params)
    return registry.status(client, model_store.model_name(params, args.model))


def _history(args: argparse.Namespace, params: Any) -> dict[str, Any]:
    from ml.release import registry
    from ml.stack import model_store

    client = model_store.get_client(params)
    name = model_store.model_name(params, args.model)
    return {"model": name, "events": registry.history(client, name)}


def _promote(args: argparse.Namespace, params: Any) -> dict[str, Any]:
    from ml.release import registry
    from ml.stack import model_store

    client = model_store.get_client(params)
    name = model_store.model_name(params, args.model)
    version = args.version or str(
        model_store.read_registration(params.paths.models, args.model)["version"]
    )
    if not args.force:
        tags = client.get_model_version(name, version).tags
        if tags.get("gate.decision") != "promote":
            # Exit 5 like every other refused promotion: the champion is untouched.
            raise registry.PromotionError(
                f"{name} v{version}: gate decision is "
                f"{tags.get('gate.decision', 'missing')!r}, not 'promote'; run "
                f"`python -m ml gate {args.model}` or pass --force"
            )
    reason = args.reason or ("gate passed" if not args.force else "forced")
    return registry.promote(
        client, name, version, args.model, reason=reason, pipeline_run=args.pipeline_run
    )


def _rollback(args: argparse.Namespace, params: Any) -> dict[str, Any]:
    from ml.release import registry
    from ml.stack import model_store

    client = model_store.get_client(params)
    return registry.rollback(
        client,
        model_store.model_name(params, args.model),
        args.model,
        reason=args.reason or "manual rollback",
        pipeline_run=args.pipeline_run,
    )


def register(tree: Any) -> None:
    for family in FAMILIES:
        tree.add(
            "gate",
            _gate(family),
            family=family,
            help=f"offline A/B gate: {family} challenger vs champion (decides, never promotes)",
            verb_help="offline A/B gate: challenger vs champion on the frozen test data",
        )
    help_verb = "MLflow registry: champion alias, promotion history, rollback"
    tree.add(
        "registry",
        _status,
        family="status",
        configure=_model_arg,
        help="champion, previous champion and versions",
        verb_help=help_verb,
    )
    tree.add(
        "registry",
        _history,
        family="history",
        configure=_model_arg,
        help="promotion and rollback history",
    )
    tree.add(
        "registry",
        _promote,
        family="promote",
        configure=_promote_args,
        help="make a version the champion (after it loads and predicts)",
    )
    tree.add(
        "registry",
        _rollback,
        family="rollback",
        configure=_rollback_args,
        help="restore the previous champion",
    )
