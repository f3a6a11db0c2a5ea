"""The plain helpers behind the DAG tasks (no scheduler needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ml.core.config import Params
from ml.core.errors import ConfigError, StackError
from ml.core.families import FAMILIES
from ml.orchestration import runtime, steps
from ml.orchestration.params import checked_overrides, conf_overrides, retrain_fields
from ml.orchestration.runtime import RunContext, StepLedger, step_argv
from ml.orchestration.settings import OrchestrationSettings
from ml.orchestration.summary import build_summary, choose_branch, format_summary, read_metrics


def test_conf_becomes_typed_family_overrides() -> None:
    intent = retrain_fields(FAMILIES["intent"])
    conf = {"epochs": 2, "learning_rate": 5e-05, "sample_size": 50, "overrides": ["seed=1"]}
    assert conf_overrides(intent, conf) == {
        "intent.train.epochs": 2,
        "intent.train.learning_rate": 5e-05,
        "intent.train.max_train_samples": 50,
        "seed": 1,
    }
    recommender = retrain_fields(FAMILIES["recommender"])
    assert conf_overrides(recommender, {"sample_size": 9, "first_day": 3, "days": 2}) == {
        "recommender.train.max_train_examples": 9,
        "generator.first_day": 3,
        "generator.days": 2,
    }
    # Empty values mean "as in params.yaml".
    assert conf_overrides(intent, {"epochs": None, "overrides": []}) == {}


def test_a_small_learning_rate_reaches_the_step_as_a_float(tmp_path: Path) -> None:
    """No string -> YAML round trip: 5e-05 (which YAML 1.1 reads as a string) stays a float,
    from the form's field and from a free-form override alike."""
    (tmp_path / "params.yaml").write_text("intent: {train: {epochs: 1}}\n")
    settings = OrchestrationSettings(project_dir=tmp_path)
    fields = retrain_fields(FAMILIES["intent"])
    for conf in ({"learning_rate": 5e-05}, {"overrides": ["intent.train.learning_rate=5e-05"]}):
        ctx = RunContext.create(settings, conf, conf_overrides(fields, conf, tmp_path))
        value = ctx.params.intent.train.learning_rate
        assert isinstance(value, float) and value == 5e-05


def test_profile_overrides_are_read_relative_to_the_project(tmp_path: Path) -> None:
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "p.yaml").write_text("intent:\n  train: {epochs: 7, batch_size: 8}\n")
    assert checked_overrides(["@configs/p.yaml", "intent.train.epochs=2"], tmp_path) == {
        "intent.train.epochs": 2,
        "intent.train.batch_size": 8,
    }


def test_malformed_override_is_refused() -> None:
    with pytest.raises(ConfigError, match="not of the form"):
        checked_overrides(["intent.train.epochs 3"])


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
    assert choose_branch(gate, conf) == branch


def test_ledger_round_trip(tmp_path: Path) -> None:
    ledger = StepLedger(tmp_path, "intent_retrain", "manual__2026-11-22T05:54:43+00:00")
    assert ledger.get("train") is None
    ledger.put("train", {"registration": {"version": "3"}})
    again = StepLedger(tmp_path, "intent_retrain", "manual__2026-11-22T05:54:43+00:00")
    assert again.get("train") == {"registration": {"version": "3"}}
    assert ":" not in again.folder.name  # run ids become safe folder names
    other = StepLedger(tmp_path, "intent_retrain", "manual__other")
    assert other.get("train") is None


def test_params_are_loaded_once_per_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A task's steps, its reports folder and its metrics all use the one Params object the
    task loaded; the step gets it in-process (no --set on the step's argv)."""
    loads: list[Any] = []
    real_load = runtime.load_params

    def counting_load(*args: Any, **kwargs: Any) -> Params:
        loads.append(args)
        return real_load(*args, **kwargs)

    seen: list[tuple[list[str], Params | None]] = []

    def fake_run_step(argv: list[str], params: Params | None = None) -> dict[str, Any]:
        seen.append((argv, params))
        return {"ok": True}

    monkeypatch.setattr(runtime, "load_params", counting_load)
    monkeypatch.setattr("ml.cli.run_step", fake_run_step)
    (tmp_path / "params.yaml").write_text("paths: {reports: out}\n")
    settings = OrchestrationSettings(project_dir=tmp_path)
    ctx = RunContext.create(settings, {}, {"intent.train.epochs": 2}, run=("d", "r"))
    ctx.run(["evaluate", "intent"])
    ctx.run(["gate", "intent"])
    read_metrics(ctx, "intent")
    assert len(loads) == 1
    assert [argv for argv, _ in seen] == [["evaluate", "intent"], ["gate", "intent"]]
    assert all(params is ctx.params for _, params in seen)
    assert ctx.params.intent.train.epochs == 2
    assert ctx.ledger is not None and ctx.ledger.folder.is_relative_to(tmp_path / "out")


def test_train_runs_once_per_dag_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    def fake_run(self: RunContext, verb: list[str]) -> dict[str, Any]:
        calls.append(verb)
        return {"registration": {"version": str(len(calls)), "model_name": "m"}}

    monkeypatch.setattr(RunContext, "run", fake_run)
    monkeypatch.setattr(steps, "tag_trained_on", lambda *a: {"utterances": ["2026-11-01"]})
    settings = OrchestrationSettings(project_dir=tmp_path)
    ctx = RunContext.create(settings, {}, {}, run=("intent_retrain", "run-1"))
    first = steps.train_once(FAMILIES["intent"], ctx)
    retry = steps.train_once(FAMILIES["intent"], ctx)
    assert calls == [["train", "intent"]]
    assert first["reused"] is False and retry["reused"] is True
    assert retry["registration"]["version"] == first["registration"]["version"] == "1"
    # A new DAG run trains (and registers) again.
    steps.train_once(FAMILIES["intent"], RunContext.create(settings, {}, {}, run=("x", "r2")))
    assert len(calls) == 2


def test_settings_from_environment() -> None:
    settings = OrchestrationSettings.from_env(
        {"SHOPFLOW_RETRIES": "5", "SHOPFLOW_TRAIN_POOL": "gpu", "SHOPFLOW_TRAIN_QUEUE": ""}
    )
    assert settings.retries == 5
    assert settings.train_pool == "gpu"
    assert settings.train_queue is None
    with pytest.raises(ConfigError, match="SHOPFLOW_"):
        OrchestrationSettings.from_env({"SHOPFLOW_PREPROCESS_MODE": "make"})


def test_step_argv_is_the_equivalent_command_line() -> None:
    argv = step_argv(["train", "intent"], "p.yaml", {"a.b": 1, "c.d": 5e-05, "e": "x y"})
    assert argv == [
        "train", "intent", "--params", "p.yaml",
        "--set", "a.b=1", "--set", "c.d=5e-05", "--set", 'e="x y"',
    ]  # fmt: skip
    from ml.cli import build_parser
    from ml.core.config import apply_overrides

    parsed = build_parser().parse_args(argv)
    assert apply_overrides({}, parsed.overrides) == {"a": {"b": 1}, "c": {"d": 5e-05}, "e": "x y"}


def test_drift_argv() -> None:
    argv = steps.drift_argv("intent", {"sample": 50, "model_path": "/m", "thresholds": ["a=1"]})
    assert argv == [
        "drift", "intent", "--sample", "50", "--model-path", "/m", "--threshold", "a=1",
    ]  # fmt: skip
    assert steps.drift_argv("intent", {})[:4] == ["drift", "intent", "--sample", "500"]


def test_summary_marks_forced_promotion() -> None:
    summary = build_summary(
        FAMILIES["intent"],
        train={"registration": {"run_id": "r", "version": "2", "model_name": "m"}},
        gate={"decision": "reject", "promote": False, "reasons": ["worse"]},
        metrics={"macro_f1": 0.5},
        outcome={"action": "promote", "forced": True},
        conf={"force_promote": True},
        link="http://x/#/experiments/1/runs/r",
    )
    assert summary["promoted"] and summary["forced"]
    text = format_summary(summary)
    assert "m v2" in text and "PROMOTED" in text and "(forced)" in text and "macro_f1" in text


def test_metrics_for_the_summary(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("paths: {reports: out}\n")
    (tmp_path / "out" / "recommender").mkdir(parents=True)
    (tmp_path / "out" / "recommender" / "metrics.json").write_text(
        '{"n_users": 9, "split": "test", "model": {"ndcg@10": 0.25, "slices": {}},'
        ' "baselines": {"most_popular": {"ndcg@10": 0.1}}}'
    )
    ctx = RunContext.create(OrchestrationSettings(project_dir=tmp_path), {}, {})
    assert read_metrics(ctx, "recommender") == {"n_users": 9, "ndcg@10": 0.25}
    assert read_metrics(ctx, "intent") == {}  # not evaluated yet


def test_schedules_come_from_params_and_the_environment_wins(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("schedules:\n  intent: '15 1 * * *'\n")
    env = {"SHOPFLOW_PROJECT_DIR": str(tmp_path), "SHOPFLOW_RECOMMENDER_SCHEDULE": "0 5 * * 2"}
    settings = OrchestrationSettings.from_env(env)
    assert settings.schedule_for("intent") == "15 1 * * *"
    assert settings.schedule_for("recommender") == "0 5 * * 2"
    assert settings.drift_schedule == "0 6 * * *"  # SchedulesConfig's default


def test_cron_defaults_live_only_in_the_params_schema(tmp_path: Path) -> None:
    """OrchestrationSettings has no cron of its own: unset means params.yaml's, whose
    defaults are ml.core.config.SchedulesConfig's."""
    from ml.core.config import SchedulesConfig

    crons = [n for n in OrchestrationSettings.model_fields if n.endswith("_schedule")]
    assert crons and all(OrchestrationSettings.model_fields[n].default is None for n in crons)
    (tmp_path / "params.yaml").write_text("{}\n")
    settings = OrchestrationSettings(project_dir=tmp_path)
    for name, cron in SchedulesConfig().model_dump().items():
        assert settings.schedule_for(name) == cron


@pytest.mark.parametrize(
    ("error", "retried"),
    [(ConfigError("bad setting"), False), (StackError("store down"), True)],
)
def test_a_step_error_that_a_retry_cannot_fix_fails_the_task_without_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception, retried: bool
) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from ml.stack.tracking import AirflowTask

    def failing_step(argv: list[str], params: Params | None = None) -> dict[str, Any]:
        raise error

    monkeypatch.setattr("ml.cli.run_step", failing_step)
    monkeypatch.setattr(
        runtime, "current_airflow_task", lambda: AirflowTask("d", "r", "preflight", 1)
    )
    ctx = RunContext.create(OrchestrationSettings(project_dir=tmp_path), {}, {})
    expected = type(error) if retried else AirflowFailException
    with pytest.raises(expected, match=str(error)):
        ctx.run(["preflight"])
    # Outside a task the step's own error comes through (the CLI's exit codes).
    monkeypatch.setattr(runtime, "current_airflow_task", lambda: None)
    with pytest.raises(type(error)):
        ctx.run(["preflight"])
