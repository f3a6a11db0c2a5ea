"""Prometheus metrics of one server app, on a registry of its own (two apps in one process, as
in tests, never share or double-register a collector)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Latency buckets in seconds: a micro-batched MiniLM forward pass is milliseconds to a second.
_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class ServingMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "shopflow_serving_requests",
            "HTTP requests by endpoint, model version and status code",
            ["endpoint", "model_version", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "shopflow_serving_request_latency_seconds",
            "Request latency by endpoint and model version",
            ["endpoint", "model_version"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "shopflow_serving_batch_size",
            "Inputs per forward pass (dynamic micro-batching)",
            ["family", "model_version", "role"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.reloads = Counter(
            "shopflow_serving_model_reloads",
            "Model swaps after an alias moved (outcome: swapped, refused)",
            ["family", "role", "outcome"],
            registry=r,
        )
        self.reload_failures = Counter(
            "shopflow_serving_model_reload_failures",
            "Versions refused: they did not load or broke the output contract",
            ["family", "role", "version", "reason"],
            registry=r,
        )
        self.refused = Gauge(
            "shopflow_serving_model_refused",
            "1 for a version behind a watched alias that is not served (see /readyz for why)",
            ["family", "role", "version", "reason"],
            registry=r,
        )
        self.loaded = Gauge(
            "shopflow_serving_model_loaded",
            "1 for the version being served (role champion) or shadowed (role shadow)",
            ["family", "role", "name", "version", "variant"],
            registry=r,
        )
        self.shadow = Counter(
            "shopflow_serving_shadow_predictions",
            "Shadow predictions by outcome (ok, error)",
            ["family", "model_version", "outcome"],
            registry=r,
        )
        self.log_rows = Gauge(
            "shopflow_serving_prediction_log_rows_written",
            "Prediction-log rows written since the server started",
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
