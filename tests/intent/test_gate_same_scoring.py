"""The gate measures both sides with evaluate's code.

A real (tiny) trained intent model is registered twice: v1 becomes the champion, v2 carries the
very same weights. Gating v2 must give exactly zero on every metric and slice with zero-width
intervals, and the challenger numbers in the gate report must equal evaluate's metrics.json
and the reliability plot's ECE to the last bit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import pytest

from ml.core.config import load_params
from ml.models.intent.evaluate import evaluate_intent
from ml.models.intent.pyfunc import log_intent_pyfunc
from ml.release.gate.run import run_gate
from ml.stack import model_store


def register_copy(params: Any, out: Path) -> dict[str, Any]:
    """Log the trained bundle again as a new version (same weights, another run)."""
    mlflow.set_tracking_uri(params.mlflow.tracking_uri)
    mlflow.set_registry_uri(params.mlflow.tracking_uri)
    with mlflow.start_run(
        experiment_id=mlflow.get_experiment_by_name(params.mlflow.intent_experiment).experiment_id
    ) as run:
        info = log_intent_pyfunc(out / "model", params.mlflow.intent_model_name, ["where is it"])
    version = str(info.registered_model_version)
    return {
        "run_id": run.info.run_id,
        "model_uri": f"models:/{params.mlflow.intent_model_name}/{version}",
        "version": version,
        "model_name": params.mlflow.intent_model_name,
    }


@pytest.fixture(scope="module")
def gated_copy(trained: dict[str, Any]) -> dict[str, Any]:
    params, out = trained["params"], trained["out"]
    params = params.model_copy(deep=True)
    params.gate = load_params(Path("params.yaml")).gate.model_copy(deep=True)  # the real rules
    params.gate.latency_rows = 0  # a wall-clock timing cannot be identical twice
    params.gate.intent.behaviour.max_extra_failures = 0
    params.gate.intent.slices = {}
    # Module-scoped: runs before the autouse per-test cleanup, so drop a store another test
    # module exported (mlflow.set_tracking_uri writes MLFLOW_TRACKING_URI) here as well.
    with pytest.MonkeyPatch.context() as mp:
        for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
            mp.delenv(name, raising=False)
        client = model_store.get_client(params)
        first = json.loads((out / "registration.json").read_text())
        client.set_registered_model_alias(
            first["model_name"], model_store.CHAMPION, first["version"]
        )
        copy = register_copy(params, out)
        (out / "registration.json").write_text(json.dumps(copy))
        reports = params.paths.reports / "intent"
        evaluate_intent(params, params.paths.processed, out, reports)
        result = run_gate("intent", params)
    gate = json.loads((reports / "gate.json").read_text())
    return {"params": params, "result": result, "gate": gate, "reports": reports, "copy": copy}


def test_same_weights_give_exactly_zero_everywhere(gated_copy: dict[str, Any]) -> None:
    gate = gated_copy["gate"]
    assert gate["context"]["champion_version"] != gated_copy["copy"]["version"]
    estimates = [e for e in gate["estimates"] if e["champion"] is not None]
    slices = {e["slice"] for e in estimates}
    assert {"all", "label=out_of_scope"} <= slices
    assert {e["metric"] for e in estimates} >= {"accuracy", "macro_f1", "ece", "mean_confidence"}
    for e in estimates:
        assert e["improvement"] == 0.0, e
        assert (e["low"], e["high"]) == (0.0, 0.0), e
    assert gated_copy["result"]["decision"] == "keep_champion" and gated_copy["result"]["tie"]
    behaviour = gate["behaviour"]
    assert behaviour["passed"] is True
    assert behaviour["challenger"]["n_failed"] == behaviour["champion"]["n_failed"]
    assert gate["mcnemar"]["champion_only"] == gate["mcnemar"]["challenger_only"] == 0


def test_gate_numbers_equal_metrics_json_and_the_reliability_plot(
    gated_copy: dict[str, Any],
) -> None:
    reports = gated_copy["reports"]
    metrics = json.loads((reports / "metrics.json").read_text())
    assert metrics["scored_model"] == gated_copy["copy"]["model_uri"]
    challenger = {
        e["metric"]: e["challenger"] for e in gated_copy["gate"]["estimates"] if e["slice"] == "all"
    }
    for name in ("accuracy", "macro_f1", "ece", "mean_confidence"):
        assert challenger[name] == metrics[name], name  # exactly, not approximately
    plot = json.loads((reports / "diagnostics" / "reliability.json").read_text())
    assert plot["ece"] == metrics["ece"] == challenger["ece"]
    assert plot["bins"] == metrics["calibration"]["bins"]


def test_reports_show_behaviour_for_both_models(gated_copy: dict[str, Any]) -> None:
    md = (gated_copy["reports"] / "gate.md").read_text()
    html = (gated_copy["reports"] / "gate.html").read_text()
    assert "Behavioural checks" in md and "Behavioural checks" in html
    assert "minimum_functionality" in md or "mft" in md
    assert "challenger" in html and "champion" in html
