"""The HTTP API of ``python -m ml serve``: the champions of the registry, online.

``create_app(params)`` builds a FastAPI app whose lifespan starts the registry watcher (models
load in the background: /healthz answers at once, /readyz once every family has a champion) and
the prediction-log writer, and stops both on shutdown (the log is flushed).

Bad input is a 4xx whose ``detail`` is one line naming the field and the limit, never a 500:
the body size is checked before any JSON is parsed (413), then types (pydantic, 422), then the
serving limits (422).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from ml.core.config import Params
from ml.core.config.privacy import PrivacyConfig
from ml.core.errors import InputError
from ml.core.prediction_log import PredictionLogWriter, PredictionRecord
from ml.models.intent.predict import check_text
from ml.serving.loading import ContractError, ServedModel
from ml.serving.metrics import ServingMetrics
from ml.serving.watcher import CHAMPION_ROLE, SHADOW_ROLE, ModelWatcher, using

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]

ENDPOINTS = (
    "/v1/intent",
    "/v1/recommend",
    "/v1/models",
    "/v1/admin/reload",
    "/healthz",
    "/readyz",
    "/metrics",
)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Module level: FastAPI resolves the handlers' string annotations in this module's globals.
_BEARER = HTTPBearer(auto_error=False, description="SHOPFLOW_SERVING_TOKEN, when set")
# Past this declared size the body is not even drained: the connection is answered and closed.
_DRAIN_FACTOR = 16


# ----------------------------------------------------------------------------- API models


class ModelRef(BaseModel):
    name: str
    version: str
    alias: str
    variant: str


class IntentRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"texts": ["where is my order", "I want a refund for the blue jacket"]},
                {"text": "cancel my order please"},
            ]
        },
    )
    texts: list[StrictStr] | None = Field(
        None, description="utterances to classify (at most serving.max_texts_per_request)"
    )
    text: StrictStr | None = Field(None, description="one utterance (instead of texts)")


class IntentPrediction(BaseModel):
    label: str = Field(description="the intent; out_of_scope below the model's threshold")
    confidence: float
    raw_label: str = Field(description="the most probable intent, before the threshold")
    out_of_scope: bool


class IntentResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "request_id": "5f0c3e8a9b7d4c2e8f1a6b3c9d0e7f21",
                    "model": {
                        "name": "intent-classifier",
                        "version": "3",
                        "alias": "champion",
                        "variant": "torch",
                    },
                    "predictions": [
                        {
                            "label": "track_order",
                            "confidence": 0.93,
                            "raw_label": "track_order",
                            "out_of_scope": False,
                        }
                    ],
                }
            ]
        }
    )
    request_id: str
    model: ModelRef
    predictions: list[IntentPrediction]


class RecommendRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"history": ["I000123", "I000456"], "k": 10}]},
    )
    history: list[StrictStr] = Field(
        description="item_ids the shopper interacted with, oldest first ([] = cold start)"
    )
    k: StrictInt = Field(10, description="how many items (1 .. serving.max_k)")


class RecommendedItem(BaseModel):
    item_id: str
    score: float


class RecommendResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "request_id": "0b7e3f1c2d4a4e5f9a8b7c6d5e4f3a2b",
                    "model": {
                        "name": "recommender",
                        "version": "2",
                        "alias": "champion",
                        "variant": "torch",
                    },
                    "items": [{"item_id": "I000789", "score": 3.21}],
                    "unknown_items": [],
                }
            ]
        }
    )
    request_id: str
    model: ModelRef
    items: list[RecommendedItem]
    unknown_items: list[str] = Field(
        default_factory=list, description="history ids the model does not know (ignored)"
    )


_ERROR = {"content": {"application/json": {"example": {"detail": "texts[3]: text is empty"}}}}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or wrong bearer token"},
    413: {"description": "body larger than serving.max_body_bytes"},
    422: {"description": "invalid input; detail names the field and the limit", **_ERROR},
    503: {"description": "no model of this family loaded yet"},
}


# ----------------------------------------------------------------------------- helpers


def _loc(loc: tuple[Any, ...] | list[Any]) -> str:
    out = ""
    for part in loc:
        if part == "body" and not out:
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def validation_detail(errors: list[dict[str, Any]]) -> str:
    """pydantic's errors as one line: ``texts[3]: Input should be a valid string; ...``."""
    parts = []
    for err in errors[:3]:
        msg = str(err.get("msg", "invalid"))
        if err.get("type") == "json_invalid":
            msg = f"invalid JSON ({(err.get('ctx') or {}).get('error', 'cannot parse')})"
        parts.append(f"{_loc(err.get('loc', ()))}: {msg}")
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more


def _unprocessable(detail: str) -> HTTPException:
    return HTTPException(status_code=422, detail=detail)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _json_response(status: int, detail: str) -> tuple[Message, Message]:
    body = json.dumps({"detail": detail}).encode()
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


class GuardMiddleware:
    """Pure ASGI: the body-size limit (before anything parses JSON) and per-request metrics
    (endpoint, the model version the handler used, status code, latency)."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, metrics: ServingMetrics) -> None:
        self.app, self.limit, self.metrics = app, max_body_bytes, metrics

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]
        # One state dict for every copy of the scope below, so the handler's
        # request.state.model_version is visible here.
        scope.setdefault("state", {})

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            if scope["method"] in {"POST", "PUT", "PATCH"}:
                receive = await self._limited_body(scope, receive, send_wrapper)
                if receive is None:
                    return
            await self.app(scope, receive, send_wrapper)
        finally:
            path = scope.get("path", "")
            endpoint = path if path in ENDPOINTS else "other"
            version = str(scope.get("state", {}).get("model_version", ""))
            self.metrics.requests.labels(endpoint, version, str(status[0])).inc()
            self.metrics.latency.labels(endpoint, version).observe(time.perf_counter() - started)

    async def _limited_body(self, scope: Scope, receive: Any, send: Any) -> Any:
        """The whole body (at most the limit), replayed to the app; None when a 413/400 was sent."""
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        limit_text = f"the limit is serving.max_body_bytes={self.limit}"
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                for message in _json_response(400, "Content-Length is not a number"):
                    await send(message)
                return None
            if size > self.limit * _DRAIN_FACTOR:
                for message in _json_response(413, f"body is {size} bytes; {limit_text}"):
                    await send(message)
                return None
        body, total, more = bytearray(), 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            total += len(chunk)
            if total <= self.limit:
                body += chunk
            more = bool(message.get("more_body", False))
        if total > self.limit:
            for message in _json_response(413, f"body is {total} bytes; {limit_text}"):
                await send(message)
            return None
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        return replay


# ----------------------------------------------------------------------------- state


def scrubbed_texts(
    privacy: PrivacyConfig,
) -> Callable[[list[PredictionRecord]], list[PredictionRecord]] | None:
    """What the prediction log does to rows before keeping them: utterance texts scrubbed of
    personal data with the validation gate's scrubber and settings (``privacy``), so the log
    holds what data/validated would; None when scrubbing is off."""
    if not privacy.enabled:
        return None

    def prepare(records: list[PredictionRecord]) -> list[PredictionRecord]:
        from ml.validation.pii import scrub_texts

        inputs = [json.loads(r.input) if r.family == "intent" else None for r in records]
        texts = [i.get("text") if isinstance(i, dict) else None for i in inputs]
        scrubbed = scrub_texts(texts, privacy).texts
        return [
            r if i is None else dataclasses.replace(r, input=_dumps({**i, "text": text}))
            for r, i, text in zip(records, inputs, scrubbed, strict=True)
        ]

    return prepare


class ServingState:
    """What the endpoints share: settings, the watcher, metrics, the prediction log."""

    def __init__(self, params: Params, token: str | None) -> None:
        self.params = params
        self.cfg = params.serving
        self.token = token or None
        self.metrics = ServingMetrics()
        self.watcher = ModelWatcher(params, self.metrics)
        self.writer: PredictionLogWriter | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if self.cfg.prediction_log and self.params.privacy.enabled:
            from ml.validation.pii import engines

            # Build the scrubber now: built on the first flush it would stall requests for seconds.
            await asyncio.to_thread(engines, self.params.privacy)
        if self.cfg.prediction_log:
            self.writer = PredictionLogWriter(
                self.cfg.prediction_log_dir,
                flush_interval_s=self.cfg.prediction_log_flush_s,
                prepare=scrubbed_texts(self.params.privacy),
            )
        self.watcher.start()

    async def stop(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.watcher.stop()
        if self.writer is not None:
            await asyncio.to_thread(self.writer.close)

    def served(self, family: str) -> ServedModel:
        if family not in self.cfg.families:
            raise HTTPException(404, f"{family} is not served here (serving.families)")
        model = self.watcher.model(family)
        if model is None or model.batcher is None:
            _, reasons = self.watcher.readiness()
            why = "; ".join(r for r in reasons if r.startswith(family)) or "loading"
            raise HTTPException(503, f"{family}: no model loaded yet ({why})")
        return model

    async def predict(self, served: ServedModel, inputs: list[Any]) -> list[Any]:
        assert served.batcher is not None
        with using(served):
            try:
                return await served.batcher.submit(inputs)
            except ContractError as exc:
                raise HTTPException(500, str(exc)) from exc
            except Exception as exc:  # the model's own failure: a server error, named
                log.exception("%s v%s failed to predict", served.family, served.version)
                raise HTTPException(
                    500, f"{served.family} v{served.version} failed to predict: {exc}"
                ) from exc

    def log(
        self,
        served: ServedModel,
        role: str,
        request_id: str,
        rows: list[tuple[Any, Any]],
        latency_ms: float,
    ) -> None:
        if self.writer is None:
            return
        self.writer.append(
            PredictionRecord(
                request_id,
                served.family,
                served.name,
                served.version,
                role,
                _dumps(inp),
                _dumps(out),
                latency_ms,
            )
            for inp, out in rows
        )

    def shadow(
        self,
        champion: ServedModel,
        request_id: str,
        inputs: list[Any],
        describe: Callable[[Any], Any],
    ) -> None:
        """The challenger predicts the same inputs off the response path; both are logged."""
        if not self.cfg.shadow:
            return
        shadow = self.watcher.model(champion.family, SHADOW_ROLE)
        if shadow is None or shadow.batcher is None or shadow.version == champion.version:
            return
        task = asyncio.get_running_loop().create_task(
            self._shadow(shadow, request_id, inputs, describe)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _shadow(
        self,
        shadow: ServedModel,
        request_id: str,
        inputs: list[Any],
        describe: Callable[[Any], Any],
    ) -> None:
        assert shadow.batcher is not None
        started = time.perf_counter()
        with using(shadow):
            try:
                results = await shadow.batcher.submit(inputs)
            except Exception as exc:  # a failing challenger never touches the caller
                self.metrics.shadow.labels(shadow.family, shadow.version, "error").inc()
                log.warning("shadow %s v%s failed: %s", shadow.family, shadow.version, exc)
                return
        latency = (time.perf_counter() - started) * 1000
        self.metrics.shadow.labels(shadow.family, shadow.version, "ok").inc()
        rows = [(describe(i), r) for i, r in zip(inputs, results, strict=True)]
        self.log(shadow, SHADOW_ROLE, request_id, rows, latency)


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id", "")
    return given if _REQUEST_ID.match(given) else uuid.uuid4().hex


def _intent_input(text: str) -> dict[str, Any]:
    """What the prediction log keeps as one intent prediction's input."""
    return {"text": text}


def _rec_input(request: tuple[tuple[str, ...], int]) -> dict[str, Any]:
    return {"history": list(request[0]), "k": request[1]}


def _model_ref(served: ServedModel) -> ModelRef:
    return ModelRef(
        name=served.name, version=served.version, alias=served.alias, variant=served.variant
    )


def intent_texts(body: IntentRequest, params: Params) -> list[str]:
    """The texts of a request, each checked (ml.models.intent.predict.check_text)."""
    cfg = params.serving
    if (body.texts is None) == (body.text is None):
        raise _unprocessable("body: give either texts (a list of strings) or text (a string)")
    texts = body.texts if body.texts is not None else [body.text or ""]
    field_name = "texts" if body.texts is not None else "text"
    if not texts:
        raise _unprocessable(
            "texts: empty list; give 1 to "
            f"serving.max_texts_per_request={cfg.max_texts_per_request} texts"
        )
    if len(texts) > cfg.max_texts_per_request:
        raise _unprocessable(
            f"texts: {len(texts)} texts in one request; the limit is "
            f"serving.max_texts_per_request={cfg.max_texts_per_request}"
        )
    for i, text in enumerate(texts):
        try:
            check_text(text, max_chars=cfg.max_text_chars)
        except InputError as exc:
            where = f"texts[{i}]" if field_name == "texts" else "text"
            limit = " (serving.max_text_chars)" if "limit" in str(exc) else ""
            raise _unprocessable(f"{where}: {exc}{limit}") from exc
    return texts


def recommend_inputs(body: RecommendRequest, params: Params) -> tuple[tuple[str, ...], int]:
    cfg = params.serving
    if body.k < 1:
        raise _unprocessable(f"k: must be at least 1, got {body.k}")
    if body.k > cfg.max_k:
        raise _unprocessable(f"k: {body.k} is above the limit serving.max_k={cfg.max_k}")
    if len(body.history) > cfg.max_history:
        raise _unprocessable(
            f"history: {len(body.history)} items; the limit is "
            f"serving.max_history={cfg.max_history}"
        )
    return tuple(body.history), body.k


# ----------------------------------------------------------------------------- the app


def create_app(params: Params, *, token: str | None = None) -> FastAPI:
    """The serving app; ``token``: when set, every /v1/* call needs ``Authorization: Bearer``."""
    state = ServingState(params, token)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        await state.start()
        try:
            yield
        finally:
            await state.stop()

    app = FastAPI(
        title="shopflow serving",
        description="The registry's champions online: intent classification and next-item "
        "recommendations, hot-swapped when an alias moves.",
        version="1",
        lifespan=lifespan,
    )
    app.state.serving = state
    app.add_middleware(
        GuardMiddleware, max_body_bytes=params.serving.max_body_bytes, metrics=state.metrics
    )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_detail(list(exc.errors()))}, status_code=422)

    def authorised(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
    ) -> None:
        if state.token is None:
            return
        supplied = credentials.credentials if credentials is not None else ""
        if not hmac.compare_digest(supplied.encode(), state.token.encode()):
            raise HTTPException(
                401,
                "missing or wrong bearer token (Authorization: Bearer <token>)",
                headers={"WWW-Authenticate": "Bearer"},
            )

    guarded = [Depends(authorised)]
    _routes(app, state, guarded)
    return app


# long function: the route table, one small handler each
def _routes(app: FastAPI, state: ServingState, guarded: list[Any]) -> None:
    @app.post(
        "/v1/intent",
        response_model=IntentResponse,
        dependencies=guarded,
        responses=_RESPONSES,
        summary="Classify utterances",
    )
    async def intent(body: IntentRequest, request: Request) -> IntentResponse:
        texts = intent_texts(body, state.params)
        served = state.served("intent")
        request.state.model_version = served.version
        request_id = _request_id(request)
        started = time.perf_counter()
        results = await state.predict(served, texts)
        latency = (time.perf_counter() - started) * 1000
        state.log(
            served,
            CHAMPION_ROLE,
            request_id,
            [(_intent_input(t), r) for t, r in zip(texts, results, strict=True)],
            latency,
        )
        state.shadow(served, request_id, texts, _intent_input)
        return IntentResponse(
            request_id=request_id,
            model=_model_ref(served),
            predictions=[IntentPrediction(**r) for r in results],
        )

    @app.post(
        "/v1/recommend",
        response_model=RecommendResponse,
        dependencies=guarded,
        responses=_RESPONSES,
        summary="Next items for a shopping history",
    )
    async def recommend(body: RecommendRequest, request: Request) -> RecommendResponse:
        history, k = recommend_inputs(body, state.params)
        served = state.served("recommender")
        request.state.model_version = served.version
        unknown = (
            [] if served.catalogue is None else [i for i in history if i not in served.catalogue]
        )
        if history and len(unknown) == len(history):
            raise _unprocessable(
                f"history: none of its {len(history)} item ids is known to recommender "
                f"v{served.version} (e.g. {history[0]!r}); send known ids, or [] for "
                "cold-start recommendations"
            )
        request_id = _request_id(request)
        started = time.perf_counter()
        [result] = await state.predict(served, [(history, k)])
        latency = (time.perf_counter() - started) * 1000
        state.log(served, CHAMPION_ROLE, request_id, [(_rec_input((history, k)), result)], latency)
        state.shadow(served, request_id, [(history, k)], _rec_input)
        items = [
            RecommendedItem(item_id=i, score=s)
            for i, s in zip(result["items"], result["scores"], strict=True)
        ]
        return RecommendResponse(
            request_id=request_id, model=_model_ref(served), items=items, unknown_items=unknown
        )

    @app.get("/v1/models", dependencies=guarded, summary="What is served, per family")
    async def models() -> dict[str, Any]:
        return {"models": state.watcher.describe()}

    @app.post("/v1/admin/reload", dependencies=guarded, summary="Check the registry now")
    async def reload() -> dict[str, Any]:
        changes = await state.watcher.check(force=True)
        ready, reasons = state.watcher.readiness()
        return {
            "changes": changes,
            "ready": ready,
            "reasons": reasons,
            "models": state.watcher.describe(),
        }

    @app.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Every family has a model loaded")
    async def readyz() -> JSONResponse:
        ready, reasons = state.watcher.readiness()
        last = state.watcher.last_check
        body = {
            "ready": ready,
            "reasons": reasons,
            "models": state.watcher.describe(),
            "last_check": last.isoformat() if last else None,
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics() -> Response:
        if state.writer is not None:
            state.metrics.log_rows.set(state.writer.written)
        return Response(state.metrics.render(), media_type=state.metrics.content_type)
