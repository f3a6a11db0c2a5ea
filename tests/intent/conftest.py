"""Fixtures for the intent tests: tiny processed data, tiny params, one trained+registered model."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ml.core.config import Params, load_params

TEMPLATES = {
    "track_order": [
        "where is my {obj}",
        "track my {obj} please",
        "has my {obj} shipped yet",
        "when will my {obj} arrive",
    ],
    "cancel_order": [
        "cancel my {obj}",
        "i want to cancel the {obj} i placed",
        "please stop my {obj} from being sent",
        "how do i cancel an {obj}",
    ],
    "get_refund": [
        "i want my money back for the {obj}",
        "refund the {obj} please",
        "how long does a refund for my {obj} take",
        "give me a refund on this {obj}",
    ],
    "out_of_scope": [
        "what is the weather like {when}",
        "tell me a joke {when}",
        "who won the football match {when}",
        "play some music {when}",
    ],
}
OBJECTS = ["order", "parcel", "package", "purchase", "shoes", "laptop", "jacket", "delivery"]
WHEN = ["today", "tomorrow", "tonight", "now", "this weekend", "later", "please", "again"]


def make_rows(n_per_label: int, seed: int) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for label, templates in TEMPLATES.items():
        for _ in range(n_per_label):
            text = rng.choice(templates).format(obj=rng.choice(OBJECTS), when=rng.choice(WHEN))
            rows.append({"text": text, "label": label})
    rng.shuffle(rows)
    return pd.DataFrame(rows)


def write_processed(root: Path, n_train: int = 24, n_eval: int = 8, seed: int = 0) -> Path:
    """Write <root>/intent/{train,val,test}.parquet + label_map.json; returns root."""
    folder = root / "intent"
    folder.mkdir(parents=True, exist_ok=True)
    start = 0
    for offset, (split, n) in enumerate((("train", n_train), ("val", n_eval), ("test", n_eval))):
        df = make_rows(n, seed + offset)
        df.insert(0, "example_id", [f"{split}-{i}" for i in range(start, start + len(df))])
        start += len(df)
        df.to_parquet(folder / f"{split}.parquet", index=False)
    (folder / "label_map.json").write_text(json.dumps({"labels": list(TEMPLATES)}))
    return root


def tiny_params(tmp: Path, model_dir: Path, **overrides: Any) -> Params:
    """Params for a fast run on the tiny BERT, with everything written under ``tmp``."""
    base = {
        "paths.processed": str(tmp / "processed"),
        "paths.models": str(tmp / "models"),
        "paths.reports": str(tmp / "reports"),
        "intent.train.model_path": str(model_dir),
        "intent.train.epochs": 1,
        "intent.train.batch_size": 8,
        "intent.train.max_length": 32,
        "intent.train.learning_rate": 0.001,
        "intent.train.length_group_batches": 4,
        "mlflow.tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}",
        "mlflow.artifact_location": (tmp / "mlartifacts").as_uri(),
    }
    base.update(overrides)
    return load_params(tmp / "no-params.yaml", base)


@pytest.fixture()
def make_params(tiny_bert_dir: Path):  # type: ignore[no-untyped-def]
    """Factory: (tmp, **overrides) -> Params on the tiny BERT with tiny data written."""

    def make(tmp: Path, **overrides: Any) -> Params:
        params = tiny_params(tmp, tiny_bert_dir, **overrides)
        write_processed(params.paths.processed)
        return params

    return make


@pytest.fixture(name="write_processed")
def write_processed_fixture():  # type: ignore[no-untyped-def]
    """The tiny synthetic data writer, for tests that pick their own sizes."""
    return write_processed


@pytest.fixture()
def tiny_processed(tmp_path: Path) -> Path:
    return write_processed(tmp_path / "processed")


MLFLOW_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@pytest.fixture(autouse=True)
def _own_mlflow_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """configure_mlflow lets MLFLOW_TRACKING_URI win over params, and mlflow.set_tracking_uri
    exports it: without this, the first test's sqlite store would capture every later test."""
    for name in MLFLOW_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> dict[str, Any]:
    """One train_intent run (MLflow in sqlite under tmp), shared by the registry/predict tests."""
    from ml.models.intent.train import train_intent

    tmp = tmp_path_factory.mktemp("intent-run")
    params = tiny_params(tmp, tiny_bert_dir, **{"intent.train.epochs": 2})
    write_processed(params.paths.processed)
    out = params.paths.models / "intent"
    with pytest.MonkeyPatch.context() as mp:
        for name in MLFLOW_ENV:
            mp.delenv(name, raising=False)
        summary = train_intent(params, params.paths.processed, out)
    return {"params": params, "out": out, "summary": summary, "tmp": tmp}
