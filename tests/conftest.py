"""Fixtures shared by every test level."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Service fixtures shared by several test folders (imported to register them).
from tests.support.services import s3_auth_endpoint, s3_endpoint  # noqa: F401

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
if "PYTEST_XDIST_WORKER" in os.environ:
    # One intra-op thread per test process (and the task and stage processes it starts): two
    # processes with two threads each on 2 cores made torch training several times slower.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")

# The longest test files start first, so that the pytest-xdist processes do not end the run
# with one of them alone on a long test (durations from `make test`'s --durations report).
LONGEST_FIRST = (
    "tests/intent/test_real.py",
    "tests/browser/",
    "tests/pipeline/test_dvc_repro.py",
    "tests/pipeline/test_hwu64_pipeline.py",
    "tests/airflow/test_rest_api_postgres.py",
    "tests/recommender/test_real.py",
    "tests/airflow/test_dag_credentials.py",
    "tests/privacy/test_pii_pipeline.py",
)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data: real public data. Tests that need it fail loudly when it is absent."""
    assert SHARED_DATA.is_dir(), f"real data folder {SHARED_DATA} is missing (see DEVELOPERS.md)"
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer BERT with MiniLM's tokenizer, saved as a local HF folder.

    Same architecture family and tokenizer as the real model, a few hundred KB of weights: for
    fast plumbing tests. Nothing is downloaded.
    """
    from transformers import AutoTokenizer, BertConfig, BertModel

    from ml.models.encoders import default_model_path

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(default_model_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files in LONGEST_FIRST first, in that order; everything else keeps its order."""

    def rank(item: pytest.Item) -> int:
        path = Path(str(item.path)).relative_to(REPO_ROOT).as_posix()
        starts = [i for i, prefix in enumerate(LONGEST_FIRST) if path.startswith(prefix)]
        return starts[0] if starts else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order within a rank is pytest's
