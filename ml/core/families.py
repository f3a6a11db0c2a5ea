"""The model families shopflow keeps fresh, described once.

The CLI, the gate, the registry, drift, the DAG factory and the demo read this table; adding a
family means adding an entry here (and its package), not editing six modules.

Plain data at import time: the scorer is named by a dotted path and imported on use, so reading
the table never imports torch or MLflow.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ml.core.errors import InputError

if TYPE_CHECKING:
    from ml.core.config import Params


@dataclass(frozen=True)
class Family:
    name: str  # `train <name>`, `evaluate <name>`, `gate <name>`, `registry ... <name>`
    title: str
    dag_id: str
    preprocess: str  # `preprocess <preprocess>`; data/processed/<preprocess>
    datasets: tuple[str, ...]  # landing datasets the model learns from
    # The evaluation frame the gate pairs: one row per key, the truth in truth_column.
    key_column: str
    truth_column: str
    eval_file: str  # under <reports>/<name>/
    # Module with load_frozen_test(params) and score_frozen_test(model, test, params): the one
    # scoring path of the family (evaluate and both sides of the gate).
    scoring_module: str
    behaviour_suite: str  # reviewed behavioural checks (expectations/behaviour/)
    # Slices always reported by the gate (judged only when params.yaml's gate rules name them).
    report_slices: tuple[str, ...]
    # params.yaml keys the trigger form's shortcuts set.
    epochs_key: str
    learning_rate_key: str
    sample_key: str

    @property
    def dvc_preprocess_stage(self) -> str:
        return f"preprocess_{self.preprocess}"

    @property
    def dvc_train_stage(self) -> str:
        return f"train_{self.name}"

    @property
    def dvc_evaluate_stage(self) -> str:
        return f"evaluate_{self.name}"

    def model_name(self, params: Params) -> str:
        return str(getattr(params.mlflow, f"{self.name}_model_name"))

    def experiment(self, params: Params) -> str:
        return str(getattr(params.mlflow, f"{self.name}_experiment"))

    def load_frozen_test(self, params: Params) -> Any:
        """The frozen test data both sides of the gate are scored on."""
        return importlib.import_module(self.scoring_module).load_frozen_test(params)

    def score(self, model: Any, test: Any, params: Params) -> Any:
        """The per-row evaluation frame of a loaded model (a DataFrame keyed by key_column)."""
        return importlib.import_module(self.scoring_module).score_frozen_test(model, test, params)


FAMILIES: dict[str, Family] = {
    "intent": Family(
        name="intent",
        title="user-intent classifier",
        dag_id="intent_retrain",
        preprocess="intent",
        datasets=("utterances",),
        key_column="example_id",
        truth_column="label",
        eval_file="predictions.parquet",
        scoring_module="ml.models.intent.scoring",
        behaviour_suite="expectations/behaviour/intent.yaml",
        report_slices=("label=out_of_scope", "new_data"),
        epochs_key="intent.train.epochs",
        learning_rate_key="intent.train.learning_rate",
        sample_key="intent.train.max_train_samples",
    ),
    "recommender": Family(
        name="recommender",
        title="next-item recommender",
        dag_id="recommender_retrain",
        preprocess="recsys",
        datasets=("catalog", "events"),
        key_column="user_idx",
        truth_column="target",
        eval_file="per_user.parquet",
        scoring_module="ml.models.recommender.scoring",
        behaviour_suite="expectations/behaviour/recommender.yaml",
        report_slices=("cold_start", "short_history", "new_item_target"),
        epochs_key="recommender.train.epochs",
        learning_rate_key="recommender.train.learning_rate",
        sample_key="recommender.train.max_train_examples",
    ),
}
FAMILY_NAMES = tuple(FAMILIES)


def get_family(name: str) -> Family:
    """The family called ``name``; an unknown name is one line naming the known ones."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise InputError(
            f"unknown model family {name!r}; expected one of {', '.join(FAMILY_NAMES)}"
        ) from None
