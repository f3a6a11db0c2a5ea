"""End to end: registration.json -> `gate` decision, reports, MLflow tags; both models are
loaded from the registry and scored by the family's scorer; `registry promote` acts only on a
passed gate. Toy contract models (tests/gate/toy_models) stand in for trained ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ml import cli
from ml.core.config import Params
from ml.core.prediction_log import write_partitions
from ml.release import registry
from ml.release.gate.run import run_gate
from tests.gate.test_online_agreement import record

ORDER_ONLY = {"keywords": {"order": "track_order"}}
ORDER_AND_REFUND = {"keywords": {"order": "track_order", "refund": "get_refund"}}
NOTHING: dict[str, Any] = {"keywords": {}}


def make_params(root: Path, uri: str, name: str) -> Params:
    rng = np.random.default_rng(0)
    texts, labels = [], []
    for i in range(240):
        kind = rng.integers(0, 3)
        texts.append(
            [f"where is my order {i}", f"I want a refund for item {i}", f"hello {i}"][kind]
        )
        labels.append(["track_order", "get_refund", "out_of_scope"][kind])
    test = pd.DataFrame(
        {"example_id": [f"u{i:04d}" for i in range(240)], "text": texts, "label": labels}
    )
    (root / "processed" / "intent").mkdir(parents=True)
    test.to_parquet(root / "processed" / "intent" / "test.parquet")
    (root / "processed" / "intent" / "label_map.json").write_text(
        json.dumps({"labels": ["get_refund", "out_of_scope", "track_order"]})
    )
    return Params.model_validate(
        {
            "paths": {
                "processed": str(root / "processed"),
                "models": str(root / "models"),
                "reports": str(root / "reports"),
            },
            "mlflow": {"tracking_uri": uri, "intent_model_name": name},
            "serving": {"prediction_log_dir": str(root / "predictions")},
            "gate": {
                "bootstrap_resamples": 1000,
                "latency_rows": 64,
                "intent": {
                    "primary": {"metric": "accuracy", "min_value": 0.3, "min_abs_change": 0.0},
                    "guardrails": [
                        {"metric": "ece", "max_value": 0.5, "higher_is_better": False},
                        {
                            "metric": "latency_ms",
                            "min_rel_change": -20.0,
                            "higher_is_better": False,
                            "judge_on": "point",
                        },
                    ],
                    "slices": {
                        "label=out_of_scope": {"metric": "accuracy", "min_abs_change": -0.05}
                    },
                    "min_slice_rows": 20,
                },
            },
        }
    )


def challenger(params: Params, log_toy: Any, config: dict[str, Any]) -> str:
    """Register a challenger and write the registration.json training would write for it."""
    model_name = params.mlflow.intent_model_name
    version, run_id = log_toy("keyword_intent", model_name, config)
    (params.paths.models / "intent").mkdir(parents=True, exist_ok=True)
    (params.paths.models / "intent" / "registration.json").write_text(
        json.dumps(
            {
                "run_id": run_id,
                "model_uri": f"models:/{model_name}/{version}",
                "version": version,
                "model_name": model_name,
            }
        )
    )
    return version


def run_cli(monkeypatch: pytest.MonkeyPatch, params: Params, tmp_path: Path, *argv: str) -> int:
    monkeypatch.setattr(cli, "COMMAND_MODULES", ["ml.release.cli"])
    monkeypatch.setattr("ml.core.config.load_params", lambda *a, **k: params)
    return cli.main([*argv, "--output-json", str(tmp_path / "out.json")])


def test_gate_then_promote_then_reject(
    tmp_path: Path,
    tracking_uri: str,
    client: Any,
    log_toy: Any,
    model_name: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    params = make_params(tmp_path, tracking_uri, model_name)
    v1 = challenger(params, log_toy, ORDER_ONLY)
    first = run_gate("intent", params)
    assert first["decision"] == "promote" and first["first_run"]
    assert run_cli(monkeypatch, params, tmp_path, "registry", "promote", "intent") == 0
    assert registry.status(client, model_name)["champion"] == v1

    v2 = challenger(params, log_toy, ORDER_AND_REFUND)
    # v2 served in shadow beside champion v1: it agreed on 3 of 4 texts.
    write_partitions(
        params.serving.prediction_log_dir,
        [
            record(f"q{i}", role, version, {"text": f"t{i}"}, {"label": label})
            for i in range(4)
            for role, version, label in [
                ("champion", v1, "track_order"),
                ("shadow", v2, "track_order" if i else "get_refund"),
            ]
        ],
    )
    # What evaluate's check of an ONNX export leaves on the version (tests/intent/test_onnx_model).
    for key, value in {"": "onnx-int8", "_accuracy_delta": "-0.0009", "_ok": "true"}.items():
        client.set_model_version_tag(model_name, v2, f"shopflow.fast_variant{key}", value)
    assert run_cli(monkeypatch, params, tmp_path, "gate", "intent") == 0
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["decision"] == "promote", result["reasons"]
    assert result["online_agreement"]["value"] == 0.75
    gate_md = (params.paths.reports / "intent" / "gate.md").read_text()
    assert "75.0% label agreement" in gate_md
    assert "onnx-int8: test accuracy -0.09% against the model; served" in gate_md
    report = json.loads((params.paths.reports / "intent" / "gate.json").read_text())
    assert report["context"]["champion_version"] == v1 and not report["first_run"]
    measured = {e["metric"]: e for e in report["estimates"] if e["slice"] == "all"}
    assert measured["latency_ms"]["champion"] > 0 and measured["accuracy"]["low"] > 0
    # Both ran the behavioural suite; the challenger is within the default tolerance of 2.
    behaviour = report["behaviour"]
    assert behaviour["passed"] is True and behaviour["champion"]["n_cases"] > 100
    assert behaviour["challenger"]["n_failed"] - behaviour["champion"]["n_failed"] <= 2
    tags = client.get_model_version(model_name, v2).tags
    assert tags["gate.decision"] == "promote" and tags["gate.champion_version"] == v1
    assert tags["gate.online_agreement"] == "0.7500"
    assert str(client.get_model_version_by_alias(model_name, "challenger").version) == v2
    run_id = json.loads((params.paths.models / "intent" / "registration.json").read_text())[
        "run_id"
    ]
    logged = {Path(a.path).name for a in client.list_artifacts(run_id, "gate")}
    assert logged == {"gate.json", "gate.md", "gate.html", "gate.png"}
    assert run_cli(monkeypatch, params, tmp_path, "registry", "promote", "intent") == 0
    assert registry.status(client, model_name)["champion"] == v2
    rerun = run_gate("intent", params)  # the DAG re-run after promotion: calm no-op
    assert rerun["decision"] == "keep_champion" and "already the champion" in rerun["reasons"][0]

    v3 = challenger(params, log_toy, NOTHING)
    worse = run_gate("intent", params)
    assert worse["decision"] == "reject"
    assert any("FAIL primary accuracy" in r for r in worse["reasons"])
    capsys.readouterr()
    assert run_cli(monkeypatch, params, tmp_path, "registry", "promote", "intent") == 5
    assert "not 'promote'" in capsys.readouterr().err
    assert registry.status(client, model_name)["champion"] == v2
    assert client.get_model_version(model_name, v3).tags["gate.decision"] == "reject"

    assert run_cli(monkeypatch, params, tmp_path, "registry", "rollback", "intent") == 0
    assert registry.status(client, model_name)["champion"] == v1
    assert run_cli(monkeypatch, params, tmp_path, "registry", "history", "intent") == 0
    events = json.loads((tmp_path / "out.json").read_text())["events"]
    assert [e["action"] for e in events] == ["promote", "promote", "rollback"]


def recommender_params(root: Path, uri: str, name: str) -> tuple[Params, np.ndarray]:
    """50 items; targets follow a hidden popularity order; the 35 least popular items never
    occur in training, so their users are the cold-start slice."""
    rng = np.random.default_rng(1)
    perm = rng.permutation(50)
    ids = [f"i{i:02d}" for i in range(50)]
    items = pd.DataFrame(
        {
            "item_idx": np.arange(50),
            "item_id": ids,
            "title": ids,
            "category": [f"c{i % 5}" for i in range(50)],
            "brand": "b",
            "price": 1.0,
            "description": "",
            "text": ids,
        }
    )
    n_users = 300
    targets = perm[np.minimum(rng.geometric(0.15, n_users) - 1, 49)]
    histories = [
        [int(x) for x in rng.choice(np.setdiff1d(np.arange(50), [t]), size=1 + u % 5)]
        for u, t in enumerate(targets)
    ]
    folder = root / "processed" / "recsys"
    folder.mkdir(parents=True)
    items.to_parquet(folder / "items.parquet")
    users = np.arange(n_users)
    pd.DataFrame({"user_idx": users, "user_id": [f"u{u}" for u in users]}).to_parquet(
        folder / "users.parquet"
    )
    warm = perm[:15]
    pd.DataFrame(
        {"user_idx": users, "items": [[int(x) for x in rng.choice(warm, 4)] for _ in users]}
    ).to_parquet(folder / "train.parquet")
    split = pd.DataFrame({"user_idx": users, "history": histories, "target": targets.astype(int)})
    split.to_parquet(folder / "val.parquet")
    split.to_parquet(folder / "test.parquet")
    gate = {
        "primary": {"metric": "ndcg@10", "min_value": 0.001, "min_abs_change": 0.0},
        "guardrails": [
            {"metric": "recall@20", "min_abs_change": -0.01},
            {"metric": "coverage@10", "min_rel_change": -0.2, "judge_on": "point"},
        ],
        "slices": {"cold_start": {"metric": "ndcg@10", "min_abs_change": -0.05}},
        "min_slice_rows": 20,
        # The toy has no add_items: the behavioural suite is tested with real models.
        "behaviour": {"enabled": False},
    }
    return Params.model_validate(
        {
            "paths": {
                "processed": str(root / "processed"),
                "models": str(root / "models"),
                "reports": str(root / "reports"),
            },
            "mlflow": {"tracking_uri": uri, "recommender_model_name": name},
            "gate": {"bootstrap_resamples": 1000, "latency_rows": 32, "recommender": gate},
            "recommender": {"top_k": 20},
        }
    ), perm


def recommender_challenger(params: Params, log_toy: Any, ranking: list[str]) -> str:
    name = params.mlflow.recommender_model_name
    version, run_id = log_toy("popularity_recommender", name, {"ranking": ranking})
    (params.paths.models / "recommender").mkdir(parents=True, exist_ok=True)
    (params.paths.models / "recommender" / "registration.json").write_text(
        json.dumps({"run_id": run_id, "version": version, "model_name": name})
    )
    return version


def test_recommender_gate_rescoring_coverage_and_slices(
    tmp_path: Path, tracking_uri: str, client: Any, log_toy: Any, model_name: str
) -> None:
    params, perm = recommender_params(tmp_path, tracking_uri, model_name)
    true_order = [f"i{i:02d}" for i in perm]
    weak_order = true_order[8:] + true_order[:8]  # the most popular items pushed down
    v1 = recommender_challenger(params, log_toy, weak_order)
    first = run_gate("recommender", params)
    assert first["decision"] == "promote" and first["first_run"], first["reasons"]
    registry.promote(client, model_name, v1, "recommender")

    v2 = recommender_challenger(params, log_toy, true_order)
    result = run_gate("recommender", params)
    assert result["decision"] == "promote", result["reasons"]
    report = json.loads((params.paths.reports / "recommender" / "gate.json").read_text())
    est = {(e["slice"], e["metric"]): e for e in report["estimates"]}
    assert est[("all", "ndcg@10")]["low"] > 0
    assert est[("all", "coverage@10")]["champion"] > 0
    test = pd.read_parquet(params.paths.processed / "recsys" / "test.parquet")
    assert est[("cold_start", "ndcg@10")]["n_rows"] == int(np.isin(test["target"], perm[15:]).sum())

    registry.promote(client, model_name, v2, "recommender")
    recommender_challenger(params, log_toy, true_order[::-1])  # least popular first
    worse = run_gate("recommender", params)
    assert worse["decision"] == "reject"
    assert any("FAIL primary ndcg@10" in r for r in worse["reasons"])


def test_a_challenger_that_does_not_load_is_one_line_and_moves_nothing(
    tmp_path: Path,
    tracking_uri: str,
    client: Any,
    log_toy: Any,
    model_name: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    params = make_params(tmp_path, tracking_uri, model_name)
    champion = challenger(params, log_toy, ORDER_ONLY)
    registry.promote(client, model_name, champion, "intent")
    broken, run_id = log_toy("broken", model_name)
    (params.paths.models / "intent" / "registration.json").write_text(
        json.dumps({"run_id": run_id, "version": broken, "model_name": model_name})
    )
    capsys.readouterr()
    assert run_cli(monkeypatch, params, tmp_path, "gate", "intent") == 4
    err = capsys.readouterr().err
    assert f"the challenger models:/{model_name}/{broken} does not load" in err
    assert "weights file is corrupt" in err and "Traceback" not in err
    assert registry.status(client, model_name)["champion"] == champion
    assert "gate.decision" not in client.get_model_version(model_name, broken).tags
