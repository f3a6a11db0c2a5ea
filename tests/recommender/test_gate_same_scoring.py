"""Both sides of the recommender gate are measured by evaluate's code.

A trained model is registered twice (same weights, two versions). Gating the second against the
first must give exactly zero on every metric and slice, coverage included, with zero-width
intervals; the gate's challenger numbers must equal evaluate's metrics.json exactly. (Before the
scorer was shared, the champion was re-scored from top-20 lists with positional ties: MRR showed
a "significant" gain for an identical model.)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import mlflow
import pytest

from ml.core.config import load_params
from ml.models.recommender.evaluate import evaluate_recommender
from ml.models.recommender.model import Recommender
from ml.models.recommender.pyfunc import log_and_register
from ml.release.gate.run import run_gate
from ml.stack import model_store


@pytest.fixture(scope="module")
def gated_copy(
    trained: Any, world_dir: Path, tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    _, _, folder = trained
    tmp = tmp_path_factory.mktemp("rec-gate")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    params = load_params(
        Path("params.yaml"),
        {
            "paths.processed": str(world_dir),
            "paths.models": str(tmp / "models"),
            "paths.reports": str(tmp / "reports"),
            "mlflow.tracking_uri": uri,
            "mlflow.artifact_location": (tmp / "mlartifacts").as_uri(),
            "gate.latency_rows": 0,  # a wall-clock timing cannot be identical twice
            "gate.recommender.behaviour.max_extra_failures": 0,
        },
    )
    # The behavioural check encodes new items' text: a 32-wide encoder like the world's vectors.
    model_dir = tmp / "models" / "recommender"
    shutil.copytree(folder, model_dir)
    saved = Recommender.load(model_dir)
    saved.config["text_model_path"] = str(tiny_bert_dir)
    saved.save(model_dir)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        experiment = mlflow.create_experiment("rec-gate", artifact_location=f"{tmp}/mlartifacts")
        infos = []
        for _ in range(2):
            with mlflow.start_run(experiment_id=experiment):
                infos.append(log_and_register(model_dir, "recommender", ["I00001", "I00002"]))
        client = model_store.get_client(params)
        client.set_registered_model_alias("recommender", model_store.CHAMPION, infos[0]["version"])
        (model_dir / "registration.json").write_text(json.dumps(infos[1]))
        reports = tmp / "reports" / "recommender"
        metrics = evaluate_recommender(params, world_dir, model_dir, reports)
        result = run_gate("recommender", params)
    gate = json.loads((reports / "gate.json").read_text())
    return {"metrics": metrics, "result": result, "gate": gate, "copy": infos[1]}


def test_same_weights_give_exactly_zero_everywhere(gated_copy: dict[str, Any]) -> None:
    estimates = [e for e in gated_copy["gate"]["estimates"] if e["champion"] is not None]
    assert {e["slice"] for e in estimates} >= {"all", "cold_start"}  # short_history: no rows here
    assert {"mrr", "ndcg@10", "recall@20", "coverage@10"} <= {e["metric"] for e in estimates}
    for e in estimates:
        assert e["improvement"] == 0.0, e
        assert (e["low"], e["high"]) == (0.0, 0.0), e
    assert gated_copy["result"]["decision"] == "keep_champion" and gated_copy["result"]["tie"]
    behaviour = gated_copy["gate"]["behaviour"]
    assert behaviour["passed"] is True
    assert {t["name"] for t in behaviour["challenger"]["tests"]} == {
        "history_excluded",
        "new_item_by_text",
        "deterministic",
    }


def test_gate_numbers_equal_metrics_json(gated_copy: dict[str, Any]) -> None:
    metrics = gated_copy["metrics"]
    assert metrics["scored_model"] == gated_copy["copy"]["model_uri"]
    challenger = {
        e["metric"]: e["challenger"] for e in gated_copy["gate"]["estimates"] if e["slice"] == "all"
    }
    for name in ("ndcg@10", "ndcg@20", "recall@10", "recall@20", "mrr", "coverage@10"):
        assert challenger[name] == metrics["model"][name], name  # exactly
