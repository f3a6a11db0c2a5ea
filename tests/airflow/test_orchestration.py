"""The plain helpers behind the DAG tasks (no scheduler needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ml import orchestration as orch
from ml.errors import ConfigError


def test_conf_becomes_family_overrides() -> None:
    conf = {"epochs": 2, "learning_rate": 0.001, "sample_size": 50, "overrides": ["seed=1"]}
    assert orch.conf_overrides(orch.FAMILIES["intent"], conf) == [
        "intent.train.epochs=2",
        "intent.train.learning_rate=0.001",
        "intent.train.max_train_samples=50",
        "seed=1",
    ]
    assert orch.conf_overrides(orch.FAMILIES["recommender"], {"sample_size": 9}) == [
        "recommender.train.max_train_examples=9"
    ]
    # Empty values mean "as in params.yaml".
    assert orch.conf_overrides(orch.FAMILIES["intent"], {"epochs": None, "overrides": []}) == []


def test_malformed_override_is_refused() -> None:
    with pytest.raises(ConfigError, match="not of the form"):
        orch.checked_overrides(["intent.train.epochs 3"])


@pytest.mark.parametrize(
    ("gate", "conf", "branch"),
    [
        ({"promote": True}, {}, "promote"),
        ({"promote": False}, {}, "reject"),
        ({"promote": False}, {"force_promote": True}, "promote"),
        ({"promote": True}, {"dry_run": True}, "reject"),
        ({"promote": False}, {"force_promote": True, "dry_run": True}, "reject"),
    ],
)
def test_branch_choice(gate: dict[str, Any], conf: dict[str, Any], branch: str) -> None:
    assert orch.choose_branch(gate, conf) == branch


def test_ledger_round_trip(tmp_path: Path) -> None:
    ledger = orch.StepLedger(tmp_path, "intent_retrain", "manual__2026-11-22T05:54:43+00:00")
    assert ledger.get("train") is None
    ledger.put("train", {"registration": {"version": "3"}})
    again = orch.StepLedger(tmp_path, "intent_retrain", "manual__2026-11-22T05:54:43+00:00")
    assert again.get("train") == {"registration": {"version": "3"}}
    assert ":" not in again.folder.name  # run ids become safe folder names
    other = orch.StepLedger(tmp_path, "intent_retrain", "manual__other")
    assert other.get("train") is None


def test_train_runs_once_per_dag_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    def fake_step(verb: list[str], settings: Any, overrides: list[str]) -> dict[str, Any]:
        calls.append(verb)
        return {"registration": {"version": str(len(calls)), "model_name": "m"}}

    monkeypatch.setattr(orch, "run_ml_step", fake_step)
    monkeypatch.setattr(orch, "tag_trained_on", lambda *a: {"utterances": ["2026-11-01"]})
    settings = orch.OrchestrationSettings(project_dir=tmp_path)
    ledger = orch.StepLedger(tmp_path, "intent_retrain", "run-1")
    first = orch.train_once(orch.FAMILIES["intent"], settings, [], ledger)
    retry = orch.train_once(orch.FAMILIES["intent"], settings, [], ledger)
    assert calls == [["train", "intent"]]
    assert first["reused"] is False and retry["reused"] is True
    assert retry["registration"]["version"] == first["registration"]["version"] == "1"
    # A new DAG run trains (and registers) again.
    orch.train_once(
        orch.FAMILIES["intent"], settings, [], orch.StepLedger(tmp_path, "intent_retrain", "r2")
    )
    assert len(calls) == 2


def test_settings_from_environment() -> None:
    settings = orch.OrchestrationSettings.from_env(
        {"SHOPFLOW_RETRIES": "5", "SHOPFLOW_TRAIN_POOL": "gpu", "SHOPFLOW_TRAIN_QUEUE": ""}
    )
    assert settings.retries == 5
    assert settings.train_pool == "gpu"
    assert settings.train_queue is None
    with pytest.raises(ConfigError, match="SHOPFLOW_"):
        orch.OrchestrationSettings.from_env({"SHOPFLOW_PREPROCESS_MODE": "make"})


def test_step_argv_passes_params_and_overrides() -> None:
    settings = orch.OrchestrationSettings(params_file="p.yaml")
    assert orch.step_argv(["train", "intent"], settings, ["a.b=1"]) == [
        "train", "intent", "--params", "p.yaml", "--set", "a.b=1",
    ]  # fmt: skip


def test_drift_argv() -> None:
    argv = orch.drift_argv("intent", {"sample": 50, "model_path": "/m", "thresholds": ["a=1"]})
    assert argv == [
        "drift", "intent", "--sample", "50", "--model-path", "/m", "--threshold", "a=1",
    ]  # fmt: skip


def test_summary_marks_forced_promotion() -> None:
    summary = orch.build_summary(
        orch.FAMILIES["intent"],
        train={"registration": {"run_id": "r", "version": "2", "model_name": "m"}},
        gate={"decision": "reject", "promote": False, "reasons": ["worse"]},
        metrics={"macro_f1": 0.5},
        outcome={"action": "promote", "forced": True},
        conf={"force_promote": True},
        link="http://x/#/experiments/1/runs/r",
    )
    assert summary["promoted"] and summary["forced"]
    text = orch.format_summary(summary)
    assert "m v2" in text and "PROMOTED" in text and "(forced)" in text and "macro_f1" in text


def test_metrics_for_the_summary(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("paths: {reports: out}\n")
    (tmp_path / "out" / "recommender").mkdir(parents=True)
    (tmp_path / "out" / "recommender" / "metrics.json").write_text(
        '{"n_users": 9, "split": "test", "model": {"ndcg@10": 0.25, "slices": {}},'
        ' "baselines": {"most_popular": {"ndcg@10": 0.1}}}'
    )
    settings = orch.OrchestrationSettings(project_dir=tmp_path)
    assert orch.read_metrics(settings, "recommender", []) == {"n_users": 9, "ndcg@10": 0.25}
    assert orch.read_metrics(settings, "intent", []) == {}  # not evaluated yet


def test_schedules_come_from_params_and_the_environment_wins(tmp_path: Path) -> None:
    from ml.orchestration import OrchestrationSettings

    (tmp_path / "params.yaml").write_text("schedules:\n  intent: '15 1 * * *'\n")
    env = {"SHOPFLOW_PROJECT_DIR": str(tmp_path), "SHOPFLOW_RECOMMENDER_SCHEDULE": "0 5 * * 2"}
    settings = OrchestrationSettings.from_env(env)
    assert settings.schedule_for("intent") == "15 1 * * *"
    assert settings.schedule_for("recommender") == "0 5 * * 2"
    assert settings.drift_schedule == "0 6 * * *"
