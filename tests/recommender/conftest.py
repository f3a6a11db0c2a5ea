"""Fixtures of the recommender tests: a synthetic shop with structure and a model trained on it."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from world import write_world

from ml.core.config.recommender import RecommenderTrainConfig
from ml.models.recommender.data import RecData, load_recsys


@pytest.fixture(scope="session")
def world_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_world(tmp_path_factory.mktemp("rec-world"))


@pytest.fixture(scope="session")
def world(world_dir: Path) -> RecData:
    return load_recsys(world_dir)


def structured_vectors(data: RecData, dim: int = 32, seed: int = 0) -> np.ndarray:
    """Random unit "text vectors" that carry the category, like a real text encoder would."""
    rng = np.random.default_rng(seed)
    cats = data.items["category"].astype("category").cat.codes.to_numpy()
    v = rng.normal(size=(data.n_items, dim)).astype(np.float32)
    v += 4.0 * np.eye(dim, dtype=np.float32)[cats % dim]
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture(scope="session")
def world_vectors(world: RecData) -> np.ndarray:
    return structured_vectors(world)


FAST_CFG = {
    "dim": 32,
    "epochs": 20,
    "batch_size": 128,
    "learning_rate": 5e-3,
    "early_stopping_patience": 3,
    "n_user_clusters": 4,
}


@pytest.fixture(scope="session")
def trained(world, world_vectors, tmp_path_factory):  # type: ignore[no-untyped-def]
    """(model, summary, folder) trained once per session on the synthetic world."""
    from ml.models.recommender.train import fit

    folder = tmp_path_factory.mktemp("rec-model")
    model, summary = fit(world, world_vectors, RecommenderTrainConfig(**FAST_CFG), folder)
    model.save(folder)
    return model, summary, folder
