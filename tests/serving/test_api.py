"""A real `python -m ml serve` process on a registry of real tiny models, over real HTTP.

One server for the module (shadow on, a bearer token, a 0.5 s poll); the tests run in file
order and move aliases as a release would: shadow, hot swap, refused versions, rollback.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from ml.core.prediction_log import read_prediction_log
from tests.serving.conftest import ITEM_IDS, TOKEN, Registry, Server, launch_server, wait_ready
from tests.support.services import stop

POLL_S = 0.5
# Slack on top of one poll interval for a 2-core machine also running the test client.
SLACK_S = 1.5


@pytest.fixture(scope="module")
def server(
    registry_store: Registry,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("serve")
    # Started on the empty store: its imports overlap registering the models (2 cores).
    srv = launch_server(
        registry_store, folder, poll_s=POLL_S, sets=["serving.shadow=true"], token=TOKEN
    )
    try:
        request.getfixturevalue("registry")
        wait_ready(srv)
        yield srv
    finally:
        stop(srv.proc)


@pytest.fixture(scope="module")
def http(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def served_version(http: httpx.Client) -> str:
    response = http.post("/v1/intent", json={"text": "where is my order"})
    assert response.status_code == 200, response.text
    return str(response.json()["model"]["version"])


def wait_until(what: str, check: Any, timeout: float) -> float:
    """Seconds until ``check()`` is true; fails after ``timeout``."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout:.1f}s")
        time.sleep(0.05)
    return time.monotonic() - started


# ----------------------------------------------------------------------------- contracts


def test_health_readiness_and_models(http: httpx.Client, registry: Registry) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    models = {m["family"]: m for m in http.get("/v1/models").json()["models"]}
    assert set(models) == {"intent", "recommender"}
    intent = models["intent"]
    assert intent["name"] == registry.intent and intent["version"] == registry.versions["v1"]
    assert intent["alias"] == "champion" and intent["variant"] == "torch" and intent["run_id"]
    assert intent["loaded_at"] and intent["refused"] is None
    assert intent["shadow"]["version"] == registry.versions["v2"]
    assert intent["shadow"]["alias"] == "challenger"
    rec = models["recommender"]
    assert rec["version"] == registry.versions["rec_v1"] and rec["variant"] == "torch"
    assert rec["shadow"] is None  # no challenger alias on the recommender


def test_intent_contract(http: httpx.Client, registry: Registry) -> None:
    texts = ["where is my order", "I want a refund", "tell me a joke"]
    response = http.post("/v1/intent", json={"texts": texts}, headers={"X-Request-ID": "req-42"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["request_id"] == "req-42"
    assert body["model"] == {
        "name": registry.intent, "version": registry.versions["v1"], "alias": "champion",
        "variant": "torch",
    }  # fmt: skip
    assert len(body["predictions"]) == 3
    for p in body["predictions"]:
        assert set(p) == {"label", "confidence", "raw_label", "out_of_scope"}
        assert 0.0 <= p["confidence"] <= 1.0 and p["raw_label"] in {
            "track_order", "cancel_order", "get_refund", "out_of_scope"
        }  # fmt: skip
        assert p["out_of_scope"] == (p["label"] == "out_of_scope")
    one = http.post("/v1/intent", json={"text": "where is my order"}).json()
    [single] = one["predictions"]  # same model, same answer (up to batch padding's float noise)
    assert single["label"] == body["predictions"][0]["label"]
    assert single["confidence"] == pytest.approx(body["predictions"][0]["confidence"], abs=1e-5)
    assert len(one["request_id"]) == 32  # generated when the caller gives none


def test_recommend_contract(http: httpx.Client, registry: Registry) -> None:
    history = ITEM_IDS[:3]
    body = http.post("/v1/recommend", json={"history": history, "k": 5}).json()
    assert body["model"]["version"] == registry.versions["rec_v1"]
    ids = [item["item_id"] for item in body["items"]]
    assert len(ids) == 5 and not set(ids) & set(history) and set(ids) <= set(ITEM_IDS)
    scores = [item["score"] for item in body["items"]]
    assert scores == sorted(scores, reverse=True) and body["unknown_items"] == []
    mixed = http.post("/v1/recommend", json={"history": [*history, "NOPE-1"], "k": 5}).json()
    assert mixed["unknown_items"] == ["NOPE-1"]
    assert [i["item_id"] for i in mixed["items"]] == ids  # unknown ids are ignored
    cold = http.post("/v1/recommend", json={"history": []})
    assert cold.status_code == 200 and len(cold.json()["items"]) == 10  # default k


def test_openapi_documents_examples_and_the_bearer_scheme(server: Server) -> None:
    spec = httpx.get(f"{server.url}/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert schemas["IntentRequest"]["examples"][0]["texts"]
    assert schemas["RecommendRequest"]["examples"][0]["k"] == 10
    assert schemas["IntentResponse"]["examples"][0]["predictions"]
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    assert {"/v1/intent", "/v1/recommend", "/v1/models", "/v1/admin/reload"} <= set(spec["paths"])


def test_metrics_count_requests_and_batches(http: httpx.Client, registry: Registry) -> None:
    text = httpx.get(f"{http.base_url}/metrics").text
    v1 = registry.versions["v1"]
    assert (
        f'shopflow_serving_requests_total{{endpoint="/v1/intent",model_version="{v1}",'
        'status="200"}' in text
    )
    assert 'shopflow_serving_request_latency_seconds_bucket{endpoint="/v1/intent"' in text
    assert f'shopflow_serving_batch_size_count{{family="intent",model_version="{v1}"' in text
    assert f'shopflow_serving_model_loaded{{family="intent",name="{registry.intent}"' in text


# ----------------------------------------------------------------------------- access


def test_bearer_token_guards_v1_only(server: Server) -> None:
    with server.client(token=None) as anonymous, server.client(token="wrong") as wrong:
        for client in (anonymous, wrong):
            response = client.post("/v1/intent", json={"text": "hi"})
            assert response.status_code == 401, response.text
            assert "bearer token" in response.json()["detail"]
            assert response.headers["www-authenticate"] == "Bearer"
            assert client.get("/v1/models").status_code == 401
            assert client.post("/v1/admin/reload").status_code == 401
        # Bad input without a token is refused for the token, not parsed.
        assert anonymous.post("/v1/intent", json={"texts": [1]}).status_code == 401
        for open_path in ("/healthz", "/readyz", "/metrics"):
            assert anonymous.get(open_path).status_code == 200


# ----------------------------------------------------------------------------- bad input

BAD_INTENT = [
    ({"texts": ["ok", "fine", "  ", "x"]}, 422, "texts[2]: text is empty"),
    ({"text": ""}, 422, "text: text is empty"),
    ({"texts": ["a" * 2001]}, 422, "texts[0]: text is 2001 characters long; the limit is 2000"),
    ({"texts": ["ok", 3]}, 422, "texts[1]: Input should be a valid string"),
    ({"texts": "where is my order"}, 422, "texts: Input should be a valid list"),
    ({"texts": []}, 422, "texts: empty list"),
    ({"txt": "hi"}, 422, "txt: Extra inputs are not permitted"),
    ({}, 422, "body: give either texts"),
    ({"text": "a", "texts": ["b"]}, 422, "body: give either texts"),
    ({"texts": ["hi"] * 10_000}, 422, "texts: 10000 texts in one request; the limit is "
     "serving.max_texts_per_request=256"),
    ({"texts": [None] * 10_000}, 422, "texts[0]: Input should be a valid string"),
    (["where is my order"], 422, "body: Input should be a valid dictionary"),
]  # fmt: skip
BAD_RECOMMEND = [
    ({"history": ["NOPE-1", "NOPE-2"]}, 422, "history: none of its 2 item ids is known"),
    ({"history": ITEM_IDS[:2], "k": 0}, 422, "k: must be at least 1, got 0"),
    ({"history": ITEM_IDS[:2], "k": -5}, 422, "k: must be at least 1, got -5"),
    ({"history": ITEM_IDS[:2], "k": 10**12}, 422, "k: 1000000000000 is above the limit "
     "serving.max_k=100"),
    ({"history": ITEM_IDS[:2], "k": "10"}, 422, "k: Input should be a valid integer"),
    ({"history": ITEM_IDS[:2], "k": 2.5}, 422, "k: Input should be a valid integer"),
    ({"history": "I000"}, 422, "history: Input should be a valid list"),
    ({"history": [1, 2]}, 422, "history[0]: Input should be a valid string"),
    ({"k": 3}, 422, "history: Field required"),
    ({"history": ITEM_IDS * 6}, 422, "history: 240 items; the limit is serving.max_history=200"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "status", "detail"), BAD_INTENT)
def test_bad_intent_input_is_a_4xx_naming_field_and_limit(
    http: httpx.Client, body: Any, status: int, detail: str
) -> None:
    response = http.post("/v1/intent", json=body)
    assert response.status_code == status, response.text
    assert detail in response.json()["detail"]


@pytest.mark.parametrize(("body", "status", "detail"), BAD_RECOMMEND)
def test_bad_recommend_input_is_a_4xx_naming_field_and_limit(
    http: httpx.Client, body: Any, status: int, detail: str
) -> None:
    response = http.post("/v1/recommend", json=body)
    assert response.status_code == status, response.text
    assert detail in response.json()["detail"]


def test_broken_json_huge_bodies_and_wrong_content(http: httpx.Client) -> None:
    bad_json = http.post(
        "/v1/intent", content=b'{"texts": ["a",', headers={"Content-Type": "application/json"}
    )
    assert bad_json.status_code == 422 and "invalid JSON" in bad_json.json()["detail"]
    megabyte = http.post("/v1/intent", json={"text": "a" * 1_048_576})
    assert megabyte.status_code == 413
    assert megabyte.json()["detail"].endswith("the limit is serving.max_body_bytes=1048576")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it streams in
        yield b'{"text": "'
        for _ in range(20):
            yield b"a" * 65536
        yield b'"}'

    streamed = http.post(
        "/v1/intent", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413
    not_json = http.post("/v1/intent", content=b"text=hi", headers={"Content-Type": "text/plain"})
    assert 400 <= not_json.status_code < 500
    # Still serving, same worker process.
    assert http.post("/v1/intent", json={"text": "where is my order"}).status_code == 200


# ----------------------------------------------------------------------------- shadow


def test_shadow_predictions_are_logged_beside_the_champions(
    http: httpx.Client, server: Server, registry: Registry
) -> None:
    response = http.post(
        "/v1/intent", json={"texts": ["cancel my order", "where is my parcel"]},
        headers={"X-Request-ID": "shadow-check-1"},
    )  # fmt: skip
    assert response.json()["model"]["version"] == registry.versions["v1"]  # the champion answers

    def logged() -> bool:
        log = read_prediction_log(server.predictions, "intent")
        return len(log[log["request_id"] == "shadow-check-1"]) == 4

    wait_until("both roles in the prediction log", logged, 10)
    log = read_prediction_log(server.predictions, "intent")
    rows = log[log["request_id"] == "shadow-check-1"]
    by_role = {role: group for role, group in rows.groupby("role")}
    assert set(by_role) == {"champion", "shadow"}
    assert set(by_role["champion"]["model_version"]) == {registry.versions["v1"]}
    assert set(by_role["shadow"]["model_version"]) == {registry.versions["v2"]}
    champion_out = [json.loads(o) for o in by_role["champion"]["output"]]
    assert champion_out == response.json()["predictions"]
    assert sorted(json.loads(i)["text"] for i in by_role["shadow"]["input"]) == [
        "cancel my order", "where is my parcel"
    ]  # fmt: skip
    assert (rows["latency_ms"] > 0).all() and set(rows["model_name"]) == {registry.intent}


def test_the_prediction_log_keeps_no_personal_data(http: httpx.Client, server: Server) -> None:
    email, phone = "jane.roe+shop@example.org", "+44 20 7946 0958"
    text = f"mail me at {email} or call {phone}, where is my parcel"
    assert http.post(
        "/v1/intent", json={"text": text}, headers={"X-Request-ID": "pii-1"}
    ).is_success

    def logged() -> bool:
        log = read_prediction_log(server.predictions, "intent")
        return bool((log["request_id"] == "pii-1").any())

    wait_until("the request in the prediction log", logged, 10)
    log = read_prediction_log(server.predictions, "intent")
    inputs = {json.loads(i)["text"] for i in log[log["request_id"] == "pii-1"]["input"]}
    assert inputs == {"mail me at <EMAIL> or call <PHONE>, where is my parcel"}
    everything = read_prediction_log(server.predictions).to_csv()  # both families, all days
    assert email not in everything and phone not in everything


# ----------------------------------------------------------------------------- hot swap


def test_hot_swap_under_concurrent_requests_has_no_errors(
    server: Server, registry: Registry
) -> None:
    old, new = registry.versions["v1"], registry.versions["v2"]
    stop_event = threading.Event()
    seen: dict[int, list[tuple[int, str]]] = {}

    def hammer(worker: int) -> None:
        with server.client() as client:
            out = seen.setdefault(worker, [])
            while not stop_event.is_set():
                r = client.post("/v1/intent", json={"texts": [f"where is order {len(out)}"]})
                out.append(
                    (r.status_code, r.json()["model"]["version"] if r.is_success else r.text)
                )

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(hammer, w) for w in range(4)]
        time.sleep(0.5)
        registry.client().set_registered_model_alias(registry.intent, "champion", new)
        moved = time.monotonic()
        with server.client() as probe:
            took = wait_until("new champion served", lambda: served_version(probe) == new,
                              POLL_S + SLACK_S)  # fmt: skip
        time.sleep(0.5)
        stop_event.set()
        for f in futures:
            f.result()
    assert took <= POLL_S + SLACK_S, f"swap took {time.monotonic() - moved:.2f}s"
    answers = [a for out in seen.values() for a in out]
    assert len(answers) > 20
    assert all(status == 200 for status, _ in answers), [a for a in answers if a[0] != 200][:3]
    for out in seen.values():  # each worker: old answers, then new ones, never back
        versions = [v for _, v in out]
        assert set(versions) <= {old, new}
        assert versions == sorted(versions, key=lambda v: v == new), versions
        assert versions[-1] == new


# ----------------------------------------------------------------------------- refused versions


@pytest.mark.parametrize(
    ("role", "kind", "words"),
    [("broken", "load_failed", "does not load"), ("wrong_columns", "contract_broken", "contract")],
)
def test_a_broken_version_is_never_served(
    http: httpx.Client, registry: Registry, role: str, kind: str, words: str
) -> None:
    serving = served_version(http)
    bad = registry.versions[role]
    registry.client().set_registered_model_alias(registry.intent, "champion", bad)

    def named() -> bool:
        reasons = http.get("/readyz").json()["reasons"]
        return any(f"v{bad}" in r and kind in r for r in reasons)

    wait_until(f"/readyz names v{bad}", named, 15)
    ready = http.get("/readyz")
    assert ready.status_code == 200  # the old version keeps serving: still ready
    [reason] = [r for r in ready.json()["reasons"] if f"v{bad}" in r]
    assert words in reason and f"serving v{serving}" in reason
    intent = {m["family"]: m for m in ready.json()["models"]}["intent"]
    assert intent["version"] == serving and intent["refused"]["version"] == bad
    metrics = http.get("/metrics").text
    assert (
        f'shopflow_serving_model_refused{{family="intent",reason="{kind}",role="champion",'
        f'version="{bad}"}} 1.0' in metrics
    )
    assert (
        f'shopflow_serving_model_reload_failures_total{{family="intent",reason="{kind}"' in metrics
    )
    for _ in range(3):  # several polls later: never served
        time.sleep(POLL_S)
        assert served_version(http) == serving
    # A forced reload retries it, and refuses it again.
    forced = http.post("/v1/admin/reload").json()
    assert [c["outcome"] for c in forced["changes"] if c["role"] == "champion"] == ["refused"]
    assert served_version(http) == serving


# ----------------------------------------------------------------------------- rollback


def test_promotion_and_rollback_are_live_within_one_poll(
    http: httpx.Client, registry: Registry
) -> None:
    from ml.release.registry import promote, rollback

    client = registry.client()
    v1, v2 = registry.versions["v1"], registry.versions["v2"]
    client.set_registered_model_alias(registry.intent, "champion", v2)
    wait_until("readyz clean", lambda: not http.get("/readyz").json()["reasons"], 10)
    promote(client, registry.intent, v1, "intent", reason="serving test")
    wait_until("promoted v1 served", lambda: served_version(http) == v1, POLL_S + SLACK_S)
    rollback(client, registry.intent, "intent", reason="serving test: v1 misbehaves")
    took = wait_until("rolled-back v2 served", lambda: served_version(http) == v2, POLL_S + SLACK_S)
    assert took <= POLL_S + SLACK_S


def test_admin_reload_checks_the_registry_at_once(http: httpx.Client, registry: Registry) -> None:
    new = registry.versions["rec_v2"]
    registry.client().set_registered_model_alias(registry.recommender, "champion", new)
    body = http.post("/v1/admin/reload").json()
    models = {m["family"]: m for m in body["models"]}
    assert models["recommender"]["version"] == new and body["ready"] is True
    # (The 0.5 s poller may have got there first: then the change is in no list, which is fine.)
    assert all(c["outcome"] == "swapped" for c in body["changes"] if c["family"] == "recommender")
    response = http.post("/v1/recommend", json={"history": ITEM_IDS[:2], "k": 3}).json()
    assert response["model"]["version"] == new


# ----------------------------------------------------------------------------- the command


def test_serve_refuses_an_unknown_family_before_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ml.cli import main

    code = main(
        [
            "serve",
            "--params",
            str(tmp_path / "none.yaml"),
            "--set",
            "serving.families=[intent, nope]",
        ]
    )
    assert code == 2
    assert "serving.families: unknown ['nope']" in capsys.readouterr().err
