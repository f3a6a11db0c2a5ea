"""Promotion, rollback, history and races on a real MLflow registry (sqlite; services: server)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from ml.release import registry
from ml.stack import model_store

KEYWORDS = {"keywords": {"order": "track_order", "refund": "get_refund"}}


def alias(client: Any, model: str, name: str) -> str | None:
    version = model_store.get_alias(client, model, name)
    return None if version is None else str(version.version)


def test_promote_history_noop_and_rollback(client: Any, log_toy: Any, model_name: str) -> None:
    v1, _ = log_toy("keyword_intent", model_name, KEYWORDS)
    v2, _ = log_toy("keyword_intent", model_name, KEYWORDS)
    first = registry.promote(client, model_name, v1, "intent", reason="first", pipeline_run="run-1")
    assert first["changed"] and first["previous"] is None
    assert alias(client, model_name, model_store.CHAMPION) == v1
    assert alias(client, model_name, model_store.PREVIOUS) is None

    registry.promote(client, model_name, v2, "intent", reason="better", pipeline_run="run-2")
    again = registry.promote(client, model_name, v2, "intent", reason="again")
    assert again["changed"] is False  # same version twice: no-op, no history entry
    state = registry.status(client, model_name)
    assert (state["champion"], state["previous_champion"]) == (v2, v1)

    back = registry.rollback(client, model_name, "intent", reason="bad live metrics")
    assert back == {"model": model_name, "champion": v1, "demoted": v2, "previous": None}
    assert alias(client, model_name, model_store.CHAMPION) == v1
    assert alias(client, model_name, model_store.PREVIOUS) is None
    assert "rolled_back_at" in client.get_model_version(model_name, v2).tags

    events = registry.history(client, model_name)
    assert [(e["action"], e["from_version"], e["to_version"]) for e in events] == [
        ("promote", None, v1),
        ("promote", v1, v2),
        ("rollback", v2, v1),
    ]
    assert events[1]["pipeline_run"] == "run-2" and events[2]["reason"] == "bad live metrics"
    with pytest.raises(registry.PromotionError, match="nothing to roll back"):
        registry.rollback(client, model_name, "intent")
    assert registry.LOCK_TAG not in client.get_registered_model(model_name).tags


def test_rollback_restores_the_chain(client: Any, log_toy: Any, model_name: str) -> None:
    versions = [log_toy("keyword_intent", model_name, KEYWORDS)[0] for _ in range(3)]
    for version in versions:
        registry.promote(client, model_name, version, "intent")
    registry.rollback(client, model_name, "intent")
    state = registry.status(client, model_name)
    # v3 rolled back -> v2 champion, and v1 (which preceded v2) is the fallback again.
    assert (state["champion"], state["previous_champion"]) == (versions[1], versions[0])


def test_artifact_that_cannot_load_is_never_promoted(
    client: Any, log_toy: Any, model_name: str
) -> None:
    good, _ = log_toy("keyword_intent", model_name, KEYWORDS)
    registry.promote(client, model_name, good, "intent")
    broken, _ = log_toy("broken", model_name)
    with pytest.raises(registry.PromotionError, match="does not load"):
        registry.promote(client, model_name, broken, "intent")
    assert alias(client, model_name, model_store.CHAMPION) == good
    assert [e["to_version"] for e in registry.history(client, model_name)] == [good]


def test_contract_breaking_output_is_never_promoted(
    client: Any, log_toy: Any, model_name: str
) -> None:
    # A recommender registered under the intent name answers with items/scores, not labels.
    version, _ = log_toy("popularity_recommender", model_name, {"ranking": ["a", "b"]})
    with pytest.raises(registry.PromotionError, match=r"fails to predict|contract"):
        registry.promote(client, model_name, version, "intent")
    assert alias(client, model_name, model_store.CHAMPION) is None


def test_racing_promotions_leave_one_consistent_champion(
    client: Any, log_toy: Any, model_name: str
) -> None:
    v1, _ = log_toy("keyword_intent", model_name, KEYWORDS)
    registry.promote(client, model_name, v1, "intent")
    racers = [log_toy("keyword_intent", model_name, KEYWORDS)[0] for _ in range(2)]
    barrier = threading.Barrier(len(racers))
    errors: list[BaseException] = []

    def race(version: str) -> None:
        try:
            barrier.wait()
            registry.promote(client, model_name, version, "intent", reason="race")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=race, args=(v,)) for v in racers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert not errors, errors
    events = registry.history(client, model_name)[1:]
    assert sorted(e["to_version"] for e in events) == sorted(racers)
    # Serialised: the second racer saw the first racer's champion, not the stale v1.
    assert events[0]["from_version"] == v1 and events[1]["from_version"] == events[0]["to_version"]
    state = registry.status(client, model_name)
    assert state["champion"] == events[1]["to_version"]
    assert state["previous_champion"] == events[0]["to_version"]
    assert registry.LOCK_TAG not in client.get_registered_model(model_name).tags
