"""train -> MLflow (sqlite in tmp_path) -> registered pyfunc returns the same top-K; evaluate
writes the gate's files."""

from __future__ import annotations

import json

import mlflow
import pandas as pd
import pytest

from ml.core.config import load_params
from ml.models.recommender.model import Recommender
from ml.models.recommender.pipeline import evaluate_step, predict_history, predict_step, train_step
from ml.models.recommender.pyfunc import score_frame


@pytest.fixture(scope="module")
def pipeline_run(world_dir, tiny_bert_dir, tmp_path_factory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("rec-pipeline")
    params = load_params(
        root / "absent.yaml",
        {
            "paths.processed": str(world_dir),
            "paths.models": str(root / "models"),
            "paths.reports": str(root / "reports"),
            "mlflow.tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
            "mlflow.artifact_location": str(root / "mlruns"),
            "recommender.train.text_model_path": str(tiny_bert_dir),
            "recommender.train.dim": 16,
            "recommender.train.epochs": 2,
            "recommender.train.n_user_clusters": 3,
        },
    )
    # The environment would win over params (ml.stack.tracking); this test owns its sqlite store.
    patch = pytest.MonkeyPatch()
    patch.delenv("MLFLOW_TRACKING_URI", raising=False)
    patch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    result = train_step(params)
    yield params, result, root
    patch.undo()


def test_registration_and_pyfunc_match_local_model(pipeline_run) -> None:  # type: ignore[no-untyped-def]
    params, _result, root = pipeline_run
    reg = json.loads((root / "models" / "recommender" / "registration.json").read_text())
    assert set(reg) >= {"run_id", "model_uri", "version", "model_name"}
    assert reg["model_name"] == "recommender" and reg["version"] == "1"
    client = mlflow.MlflowClient(params.mlflow.tracking_uri)
    run = client.get_run(reg["run_id"])
    assert "git_commit" in run.data.tags and "data.train.md5" in run.data.tags
    assert len(client.get_metric_history(reg["run_id"], "val_ndcg_at_10")) == 2
    mv = client.get_model_version("recommender", "1")
    assert not mv.aliases  # promotion is the gate's job

    local = Recommender.load(root / "models" / "recommender")
    histories = [
        [local.item_ids[0], local.item_ids[5]],
        [],
        ["unknown-id", local.item_ids[9]],
        [local.item_ids[2]] * 3,
    ]
    expected = score_frame(local, histories, 7)
    mlflow.set_tracking_uri(params.mlflow.tracking_uri)
    loaded = mlflow.pyfunc.load_model(reg["model_uri"])
    got = loaded.predict(pd.DataFrame({"history": histories}), params={"k": 7})
    assert list(got.columns) == ["items", "scores"]
    assert [list(x) for x in got["items"]] == [list(x) for x in expected["items"]]
    assert got["items"].map(len).tolist() == [7] * 4
    assert local.item_ids[0] not in got["items"][0]
    # Unknown ids are ignored: same as the history without them.
    alone = score_frame(local, [[local.item_ids[9]]], 7)
    assert list(got["items"][2]) == list(alone["items"][0])

    # New items become rankable through the documented add_items path.
    py = loaded.unwrap_python_model()
    py.add_items(["NEW-1"], ["brand-new compact lamp. lamps. brand1"])
    more = loaded.predict(pd.DataFrame({"history": [[]]}), params={"k": py.model.n_items})
    assert "NEW-1" in list(more["items"][0])


def test_evaluate_and_predict_steps(pipeline_run, world) -> None:  # type: ignore[no-untyped-def]
    params, _, root = pipeline_run
    out = evaluate_step(params)
    reports = root / "reports" / "recommender"
    metrics = json.loads((reports / "metrics.json").read_text())
    assert set(metrics["baselines"]) == {"most_popular", "co_occurrence", "text_similarity"}
    assert "ndcg@10_vs_best_baseline" in metrics["margin"]
    assert set(metrics["slices"]) == {"cold_start", "short_history", "category", "user_cluster"}
    per_user = pd.read_parquet(reports / "per_user.parquet")
    assert len(per_user) == len(world.test)
    assert (reports / "plots" / "metric_vs_k.png").exists()
    assert out["model"]["ndcg@10"] == pytest.approx(metrics["model"]["ndcg@10"])
    client = mlflow.MlflowClient(params.mlflow.tracking_uri)
    reg = json.loads((root / "models" / "recommender" / "registration.json").read_text())
    assert "test.ndcg_at_10" in client.get_run(reg["run_id"]).data.metrics

    pred = predict_step(params, k=5)
    top = pd.read_parquet(pred["file"])
    assert len(top) == len(world.test) and top["items"].map(len).eq(5).all()
    one = predict_history(params, ["I00001", "nope"], k=3)
    assert one["unknown_ignored"] == ["nope"] and len(one["items"]) == 3
