"""Serving fixtures: a sqlite MLflow registry in a temporary folder holding real tiny models
(two IntentModel versions on a 2-layer BERT, two Recommender versions), a version that does not
load and one that breaks the intent contract; and a real `python -m ml serve` process on it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.support.services import free_port, stop, wait_http

TOYS = Path(__file__).parent / "toy_models"
GATE_TOYS = Path(__file__).parents[1] / "gate" / "toy_models"
INTENT_LABELS = ["track_order", "cancel_order", "get_refund", "out_of_scope"]
N_ITEMS = 40
ITEM_IDS = [f"I{i:03d}" for i in range(N_ITEMS)]
TOKEN = "s3cret-serving-token"


@dataclass
class Registry:
    uri: str
    root: Path
    intent: str  # registered model names
    recommender: str
    # role -> version: intent v1, v2 (real), broken (does not load), wrong_columns (contract)
    versions: dict[str, str] = field(default_factory=dict)
    experiment: str = ""

    def client(self) -> Any:
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)


def _intent_bundle(tiny_bert: Path, folder: Path, seed: int) -> Path:
    import torch

    from ml.models.intent.model import build_net, save_bundle

    torch.manual_seed(seed)
    net, tokenizer = build_net(tiny_bert, len(INTENT_LABELS), dropout=0.0)
    meta = {
        "labels": INTENT_LABELS,
        "threshold": 0.26,
        "max_length": 32,
        "oos_label": "out_of_scope",
        "batch_size": 32,
    }
    return save_bundle(net, tokenizer, folder, meta)


def _recommender_folder(folder: Path, seed: int) -> Path:
    import torch

    from ml.models.recommender.model import Recommender, SeqRecNet

    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(N_ITEMS, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    torch.manual_seed(seed)
    net = SeqRecNet(torch.from_numpy(vectors), torch.ones(N_ITEMS), dim=16, n_clusters=2)
    model = Recommender(
        net, ITEM_IDS, vectors, vectors[:2].copy(), max_history=10, config={"dim": 16}
    )
    return model.save(folder)


@contextmanager
def using_store(uri: str) -> Iterator[None]:
    """MLflow's tracking and registry URIs on ``uri``, then exactly as before: set_tracking_uri
    also exports MLFLOW_TRACKING_URI, which would otherwise follow every later test of this
    xdist process (one of them then looked for its run in this store)."""
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    saved_env = {k: os.environ.get(k) for k in names}
    saved = (tracking_utils._tracking_uri, registry_utils._registry_uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(saved[0])
        registry_utils._registry_uri = saved[1]
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def registry_store(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """An empty sqlite tracking store (schema created) and its experiment. A server may start on
    it before the models are registered."""
    import mlflow

    root = tmp_path_factory.mktemp("serving-registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    reg = Registry(uri, root, intent="intent-classifier", recommender="recommender")
    with using_store(uri):
        reg.experiment = mlflow.create_experiment(
            "serving", artifact_location=(root / "art").as_uri()
        )
    return reg


@pytest.fixture(autouse=True)
def _serving_store(registry_store: Registry) -> Iterator[None]:
    """Each serving test talks to the serving registry (in-process promote, rollback, loads)."""
    with using_store(registry_store.uri):
        yield


@pytest.fixture(scope="session")
def registry(registry_store: Registry, tiny_bert_dir: Path) -> Registry:
    """The registry, with aliases: intent champion v1 + challenger v2, recommender champion v1."""
    reg, root, experiment = registry_store, registry_store.root, registry_store.experiment
    with using_store(reg.uri):
        _register_models(reg, root, experiment, tiny_bert_dir)
    return reg


def _register_models(reg: Registry, root: Path, experiment: str, tiny_bert_dir: Path) -> None:
    import mlflow

    from ml.models.intent.pyfunc import log_intent_pyfunc
    from ml.models.recommender.pyfunc import log_and_register

    for seed, role in ((0, "v1"), (1, "v2")):
        bundle = _intent_bundle(tiny_bert_dir, root / f"intent-{role}", seed)
        with mlflow.start_run(experiment_id=experiment):
            info = log_intent_pyfunc(bundle, reg.intent, ["where is my order"])
        reg.versions[role] = str(info.registered_model_version)
    for kind in ("broken", "wrong_columns"):
        path = (
            GATE_TOYS if kind == "broken" else TOYS
        ) / f"{kind}{'_intent' * (kind != 'broken')}.py"
        with mlflow.start_run(experiment_id=experiment):
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(path),
                registered_model_name=reg.intent,
                pip_requirements=["mlflow"],  # no requirement inference (seconds per model)
            )
        reg.versions[kind] = str(info.registered_model_version)
    folder = _recommender_folder(root / "rec", 0)
    with mlflow.start_run(experiment_id=experiment):
        registration = log_and_register(folder, reg.recommender, ITEM_IDS[:3])
    reg.versions["rec_v1"] = registration["version"]
    # v2: the same artifact registered again (what matters here is a second version number;
    # logging a recommender costs seconds of pip-requirement inference).
    again = mlflow.register_model(registration["logged_model_uri"], reg.recommender)
    reg.versions["rec_v2"] = str(again.version)
    client = reg.client()
    client.set_registered_model_alias(reg.intent, "champion", reg.versions["v1"])
    client.set_registered_model_alias(reg.intent, "challenger", reg.versions["v2"])
    client.set_registered_model_alias(reg.recommender, "champion", reg.versions["rec_v1"])


@dataclass
class Server:
    url: str
    log: Path
    predictions: Path
    poll_s: float
    proc: subprocess.Popen[bytes]

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def launch_server(
    registry: Registry, folder: Path, *, poll_s: float, sets: list[str], token: str | None
) -> Server:
    """`python -m ml serve` on a free port (not waited for: see wait_ready)."""
    port = free_port()
    predictions = folder / "predictions"
    args = [
        sys.executable, "-m", "ml", "serve", "--port", str(port),
        "--params", str(folder / "absent-params.yaml"),
        "--set", f"mlflow.tracking_uri={registry.uri}",
        "--set", f"serving.poll_interval_s={poll_s}",
        "--set", f"serving.prediction_log_dir={predictions}",
        "--set", "serving.prediction_log_flush_s=0.2",
    ]  # fmt: skip
    for entry in sets:
        args += ["--set", entry]
    env = {**os.environ, "MLFLOW_TRACKING_URI": registry.uri, "OMP_NUM_THREADS": "1"}
    env.pop("SHOPFLOW_SERVING_TOKEN", None)
    if token:
        env["SHOPFLOW_SERVING_TOKEN"] = token
    log = folder / "server.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(args, cwd=folder, env=env, stdout=fh, stderr=subprocess.STDOUT)
    return Server(f"http://127.0.0.1:{port}", log, predictions, poll_s, proc)


def wait_ready(server: Server, timeout: float = 90) -> None:
    """Until /readyz says every family has its champion loaded."""
    wait_http(f"{server.url}/healthz", server.proc, "ml serve", server.log, 60)
    deadline = time.monotonic() + timeout
    while httpx.get(f"{server.url}/readyz", timeout=10).status_code != 200:
        if time.monotonic() > deadline or server.proc.poll() is not None:
            stop(server.proc)
            raise RuntimeError(f"ml serve never ready; log:\n{server.log.read_text()[-4000:]}")
        time.sleep(0.2)
