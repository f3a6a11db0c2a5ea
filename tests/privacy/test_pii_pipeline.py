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
from ml.validation.partitions import PartitionsQuarantined, validate_landing
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


def _params_with_docs(root: Path, **validation: object) -> Params:
    params = make_params(root, data_docs=True)
    return params.model_copy(update={"validation": params.validation.model_copy(update=validation)})


def test_a_quarantined_partition_is_reported_without_its_personal_data(tmp_path: Path) -> None:
    # Texts over 40 characters fail the length rule, so GE quotes many texts, PII included.
    params = _params_with_docs(tmp_path, text_max_chars=40)
    generate_world(GEN.model_copy(update={"days": 1}), params.paths.landing)
    with pytest.raises(PartitionsQuarantined) as failed:
        validate_landing(params, dataset="utterances", now=NOW)
    values = injected_values(GEN.model_copy(update={"days": 1}))
    quarantined = params.paths.quarantine / "utterances" / "date=2026-11-01"
    assert leaks([quarantined], values).keys() == {str(quarantined / "part-000.csv")}, (
        "the raw delivery is kept whole in quarantine, and only there"
    )
    assert leaks([params.paths.reports], values) == {}  # summary, GE stores and Data Docs
    assert (params.paths.reports / "validation" / "gx" / "uncommitted" / "data_docs").is_dir()
    message = str(failed.value)
    assert not any(v in message for v in values)
    assert "expect_column_value_lengths_to_be_between" in message


def test_huge_and_undecodable_texts_are_quarantined_whole_and_never_quoted(
    tmp_path: Path,
) -> None:
    params = _params_with_docs(tmp_path)
    secret = "jane.roe+orders@example.org"
    header = "utterance_id,text,intent,timestamp\n"

    def deliver(day: str, last_row: bytes) -> Path:
        part = params.paths.landing / "utterances" / f"date={day}" / "part-000.csv"
        part.parent.mkdir(parents=True)
        rows = "".join(
            f"u{i},where is my order {i},track_order,{day}T10:00:00\n" for i in range(30)
        )
        part.write_bytes((header + rows).encode() + last_row)
        return part

    text = f"mail me at {secret} "
    sent = [
        # 1 MB in one field: the CSV reader refuses it (field limit).
        deliver(
            "2026-11-01", f"u99,{text}{'x' * 1_000_000},track_order,2026-11-01T11:00\n".encode()
        ),
        # Over validation.text_max_chars (512): the length rule fails and quotes the text.
        deliver("2026-11-02", f"u99,{text}{'x' * 5_000},track_order,2026-11-02T11:00\n".encode()),
        # Not UTF-8: the decoding rule names the byte offset.
        deliver("2026-11-03", f"u99,café {text},track_order,2026-11-03T11:00\n".encode("latin-1")),
    ]
    raw = {p.parent.name: p.read_bytes() for p in sent}
    with pytest.raises(PartitionsQuarantined) as failed:
        validate_landing(params, dataset="utterances", now=datetime(2026, 11, 4, tzinfo=UTC))
    summary = json.loads((params.paths.reports / "validation" / "summary.json").read_text())
    assert summary["counts"]["quarantined"] == 3
    for name, data in raw.items():  # nothing lost: each delivery, byte for byte
        assert (params.paths.quarantine / "utterances" / name / "part-000.csv").read_bytes() == data
    assert leaks([params.paths.reports, params.paths.validated], {secret}) == {}
    message = str(failed.value)
    assert secret not in message
    assert "field larger than field limit" in message
    assert "expect_column_value_lengths_to_be_between" in message
    assert "is not UTF-8" in message
