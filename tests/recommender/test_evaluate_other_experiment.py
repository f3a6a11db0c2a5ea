"""`python -m ml train recommender --set mlflow.recommender_experiment=X`, then
`python -m ml evaluate recommender` in a new process with the default settings: the evaluation
is logged to the training run, in that run's experiment (MLflow refuses to reopen a run while
another experiment is active), and the registered version is loaded from the store params.yaml
names (mlflow.tracking_uri), not from MLflow's default ./mlflow.db."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ml.cli import main
from ml.core.config import load_params
from tests.support.other_experiment import (
    assert_evaluation_in_training_run,
    evaluate_in_a_new_process,
)

OTHER = "recommender-elsewhere"


def test_evaluate_logs_to_training_run_in_another_experiment(
    world_dir: Path,
    tiny_bert_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    params = load_params(
        tmp_path / "absent.yaml",
        {
            "paths.processed": str(world_dir),
            "paths.models": str(tmp_path / "models"),
            "paths.reports": str(tmp_path / "reports"),
            "mlflow.tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "mlflow.artifact_location": str(tmp_path / "mlruns"),
            "recommender.train.text_model_path": str(tiny_bert_dir),
            "recommender.train.dim": 16,
            "recommender.train.epochs": 1,
            "recommender.train.n_user_clusters": 3,
        },
    )
    assert params.mlflow.recommender_experiment != OTHER
    file = tmp_path / "params.yaml"
    file.write_text(yaml.safe_dump(params.model_dump(mode="json")), encoding="utf-8")
    train = ["train", "recommender", "--params", str(file)]
    assert main([*train, "--set", f"mlflow.recommender_experiment={OTHER}"]) == 0

    # A new process with the default experiment, nothing from this one's MLflow state.
    evaluate_in_a_new_process("recommender", file, tmp_path)
    assert_evaluation_in_training_run(
        params.mlflow.tracking_uri,
        OTHER,
        params.mlflow.recommender_experiment,
        {"test.ndcg_at_10", "test.most_popular.ndcg_at_10"},
    )

    # A store without the registered version: one line naming the setting, no traceback.
    capsys.readouterr()
    empty = f"mlflow.tracking_uri=sqlite:///{tmp_path / 'empty.db'}"
    assert main(["evaluate", "recommender", "--params", str(file), "--set", empty]) == 4
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: cannot load recommender model models:/recommender/1")
    assert "mlflow.tracking_uri" in err
