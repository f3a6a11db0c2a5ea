"""Personal data stays out of everything kept: validated data, processed data, reports, models,
MLflow. The synthetic shop with generator.pii_rate > 0 runs through the real steps."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ml.core.config import Params, load_params
from ml.core.config.data import GeneratorConfig
from ml.core.config.privacy import PrivacyConfig
from ml.data.pii_samples import DECOY, PII_KINDS
from ml.data.synthetic import generate_world
from ml.data.utterances import generate_utterances
from ml.data.world import build_world
from ml.validation.partitions import validate_landing
from tests.support.pii import injected_values, leaks
from tests.validation.conftest import make_params

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
GEN = GeneratorConfig(n_items=60, n_users=40, utterances_per_day=300, days=2, pii_rate=0.3)


def test_generator_pii_rate_records_spans_and_keeps_labels() -> None:
    world = build_world(GEN)
    plain = generate_utterances(world, GEN.model_copy(update={"pii_rate": 0.0}), 0)
    dirty = generate_utterances(world, GEN, 0)
    assert [u.intent for u in plain] == [u.intent for u in dirty]
    kinds = {s.entity for u in dirty for s in u.pii}
    assert set(PII_KINDS) | {DECOY} <= kinds
    for u in dirty:
        assert all(u.text[s.start : s.end] == s.value for s in u.pii)
    # Without injection the texts are exactly the unscrubbed shop's (the stream is separate).
    assert all(p.text == d.text[: len(p.text)] for p, d in zip(plain, dirty, strict=True))


def _params(root: Path, **privacy: object) -> Params:
    """The validation tests' params (every path under ``root``) with these privacy settings."""
    return make_params(root).model_copy(update={"privacy": PrivacyConfig(**privacy)})  # type: ignore[arg-type]


def test_validate_writes_scrubbed_text_and_a_counts_only_report(tmp_path: Path) -> None:
    params = _params(tmp_path, raw_retention_days=5)
    generate_world(GEN, params.paths.landing)
    summary = validate_landing(params, now=datetime(2026, 11, 3, 12, tzinfo=UTC))
    values = injected_values(GEN)
    landing = params.paths.landing / "utterances"
    assert leaks([landing], values), "the raw landing data must hold the injected values"
    assert leaks([params.paths.validated, params.paths.reports], values) == {}
    for folder in sorted((params.paths.validated / "utterances").glob("date=*")):
        report = json.loads((folder / "pii.json").read_text())
        assert report["rows"] == 300 and report["rows_with_pii"] > 50
        assert set(report["counts"]) == set(PII_KINDS) and all(report["counts"].values())
        text = (folder / "part-000.csv").read_text()
        assert "<EMAIL>" in text and "<CARD>" in text and "ORD-" in text
        assert json.loads((folder / "validation.json").read_text())["pii"] == report
    assert summary["pii"]["EMAIL"] > 0 and summary["raw_pruned"] == []
    # Pruning: partitions older than raw_retention_days whose content was accepted go.
    later = validate_landing(params, now=datetime(2026, 11, 7, tzinfo=UTC))
    assert [Path(p).name for p in later["raw_pruned"]] == ["date=2026-11-01"]
    assert sorted(p.name for p in landing.iterdir()) == ["date=2026-11-02"]
    assert (params.paths.validated / "utterances" / "date=2026-11-01" / "part-000.csv").is_file()


def test_scrubbing_off_copies_the_raw_text(tmp_path: Path) -> None:
    params = _params(tmp_path, enabled=False)
    generate_world(GEN.model_copy(update={"days": 1}), params.paths.landing)
    validate_landing(params, now=NOW)
    assert leaks([params.paths.validated], injected_values(GEN.model_copy(update={"days": 1})))


def test_no_injected_value_reaches_anything_kept(
    tmp_path: Path, repo_root: Path, tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ml.cli import run_step

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    sets = {
        "generator.n_items": 60,
        "generator.n_users": 40,
        "generator.utterances_per_day": 200,
        "generator.days": 1,
        "generator.pii_rate": 0.3,
        "validation.data_docs": True,
        "intent.train.model_path": str(tiny_bert_dir),
        "intent.train.epochs": 1,
        "intent.train.batch_size": 16,
        "intent.train.max_length": 32,
        "intent.train.max_train_samples": 64,
        "mlflow.tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "mlflow.artifact_location": (tmp_path / "mlartifacts").as_uri(),
        "gate.latency_rows": 0,
    }
    common = ["--params", str(repo_root / "params.yaml")]
    for key, value in sets.items():
        common += ["--set", f"{key}={value}"]
    params = load_params(repo_root / "params.yaml", [f"{k}={v}" for k, v in sets.items()])
    run_step(["ingest", *common])
    run_step(["validate", *common])
    run_step(["preprocess", "intent", *common])
    run_step(["train", "intent", *common])
    run_step(["evaluate", "intent", *common])
    values = injected_values(params.generator)
    assert len(values) > 40
    assert leaks([tmp_path / "data" / "landing"], values), "nothing was injected"
    kept = [tmp_path / p for p in ("data/validated", "data/processed", "reports", "models")]
    kept += [tmp_path / "mlartifacts", tmp_path / "mlflow.db"]
    assert all(p.exists() for p in kept)
    assert leaks([p for p in kept if p.is_dir()], values) == {}
    assert leaks([tmp_path], values).keys() <= {
        str(f) for f in (tmp_path / "data" / "landing").rglob("*")
    }
