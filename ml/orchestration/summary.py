"""The retrain DAG's branch and summary: promote or reject, and the lines a user reads at the
end of a run (decision, metrics, MLflow link, data version)."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from ml.orchestration.runtime import in_project

if TYPE_CHECKING:
    from ml.core.families import Family
    from ml.orchestration.runtime import RunContext

log = logging.getLogger(__name__)


def choose_branch(gate: dict[str, Any], conf: dict[str, Any]) -> str:
    """Task id to follow after the gate: ``promote`` or ``reject``.

    dry_run wins over everything (nothing changes in the registry); force_promote overrides a
    negative gate decision (recorded as forced in the promotion history).
    """
    if conf.get("dry_run"):
        return "reject"
    if conf.get("force_promote") or gate.get("promote"):
        return "promote"
    return "reject"


def mlflow_run_link(ctx: RunContext, run_id: str | None) -> str | None:
    """The run's page in the MLflow UI (``settings.mlflow_ui_url``), None if unknown."""
    if not run_id:
        return None
    import mlflow

    from ml.stack.tracking import resolve_tracking_uri

    settings = ctx.settings
    with in_project(settings):
        uri, _ = resolve_tracking_uri(ctx.params.mlflow)
        try:
            experiment = mlflow.MlflowClient(tracking_uri=uri).get_run(run_id).info.experiment_id
        except Exception as exc:  # a link is a convenience: never fail the summary for it
            log.warning("cannot look up MLflow run %s: %s", run_id, exc)
            return None
    return f"{settings.mlflow_ui_url.rstrip('/')}/#/experiments/{experiment}/runs/{run_id}"


def read_metrics(ctx: RunContext, family: str) -> dict[str, Any]:
    """The numbers of ``<reports>/<family>/metrics.json`` (what evaluate wrote)."""
    path = ctx.reports / family / "metrics.json"
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    # Keep the XCom small: top-level numbers, and the model's own (recommender: under "model").
    flat = {k: v for k, v in data.items() if isinstance(v, int | float)}
    model = data.get("model")
    if isinstance(model, dict):
        flat.update({k: v for k, v in model.items() if isinstance(v, int | float)})
    return flat


def build_summary(
    spec: Family,
    *,
    train: dict[str, Any],
    gate: dict[str, Any],
    metrics: dict[str, Any],
    outcome: dict[str, Any] | None,
    conf: dict[str, Any],
    link: str | None = None,
    data_version: dict[str, Any] | None = None,
) -> dict[str, Any]:
    registration = train.get("registration") or {}
    run_id = registration.get("run_id")
    promoted = bool(outcome and outcome.get("action") == "promote")
    return {
        "family": spec.name,
        "model": registration.get("model_name"),
        "version": registration.get("version"),
        "decision": gate.get("decision"),
        "gate_promote": gate.get("promote"),
        "reasons": gate.get("reasons", []),
        "promoted": promoted,
        "forced": bool(conf.get("force_promote")) and promoted and not gate.get("promote"),
        "dry_run": bool(conf.get("dry_run")),
        "metrics": metrics,
        "mlflow_run_id": run_id,
        "mlflow_run_link": link,
        "train_reused": train.get("reused", False),
        # push_data's result in dvc mode: the remote and the hashes of the data it learnt from.
        "data_version": data_version,
    }


def format_summary(summary: dict[str, Any]) -> str:
    lines = [
        f"{summary['family']}: {summary['model']} v{summary['version']} -> "
        f"gate {summary['decision']}, "
        + ("PROMOTED to champion" if summary["promoted"] else "not promoted")
        + (" (forced)" if summary["forced"] else "")
        + (" (dry run)" if summary["dry_run"] else ""),
        f"  MLflow run: {summary['mlflow_run_link']}",
    ]
    data = summary.get("data_version") or {}
    if data.get("outs"):
        where = f"DVC remote {data['remote']}" if data.get("remote") else "the local DVC cache"
        for path, md5 in data["outs"].items():
            lines.append(f"  data: {path} ({md5}) in {where}")
    lines += [f"  {k} = {v:.4f}" for k, v in sorted(summary["metrics"].items())]
    lines += [f"  reason: {r}" for r in summary["reasons"]]
    return "\n".join(lines)
