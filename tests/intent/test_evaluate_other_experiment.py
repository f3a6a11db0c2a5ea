"""`python -m ml train intent --set mlflow.intent_experiment=X`, then `python -m ml evaluate
intent` in a new process with the default settings: the evaluation is logged to the training run,
in that run's experiment (MLflow refuses to reopen a run while another experiment is active),
and the registered version is loaded from the store params.yaml names (mlflow.tracking_uri),
not from MLflow's default ./mlflow.db."""

from __future__ import annotations

from pathlib import Path

import yaml

from ml.cli import main
from tests.intent.conftest import tiny_params, write_processed
from tests.support.other_experiment import (
    assert_evaluation_in_training_run,
    evaluate_in_a_new_process,
)

OTHER = "intent-elsewhere"


def test_evaluate_logs_to_training_run_in_another_experiment(
    tmp_path: Path, tiny_bert_dir: Path
) -> None:
    params = tiny_params(tmp_path, tiny_bert_dir)
    assert params.mlflow.intent_experiment != OTHER
    write_processed(params.paths.processed)
    file = tmp_path / "params.yaml"
    file.write_text(yaml.safe_dump(params.model_dump(mode="json")), encoding="utf-8")
    train = ["train", "intent", "--params", str(file)]
    assert main([*train, "--set", f"mlflow.intent_experiment={OTHER}"]) == 0

    # A new process with the default experiment, nothing from this one's MLflow state.
    evaluate_in_a_new_process("intent", file, tmp_path)
    assert_evaluation_in_training_run(
        params.mlflow.tracking_uri,
        OTHER,
        params.mlflow.intent_experiment,
        {"test_macro_f1", "test_accuracy"},
    )
