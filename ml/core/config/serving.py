"""Settings of the online model server (params.yaml section ``serving``; ``python -m ml serve``).

Deployment secrets never live here: the optional bearer token comes from the environment
(``SHOPFLOW_SERVING_TOKEN``), the tracking store from ``MLFLOW_TRACKING_URI`` as everywhere.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ServingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Loopback by default: exposing the server is a deliberate `--host 0.0.0.0`.
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    # Model families served (ml.core.families); each needs its `alias` in the registry.
    families: list[str] = Field(default_factory=lambda: ["intent", "recommender"], min_length=1)
    alias: str = Field("champion", min_length=1)
    # With shadow true, the version behind shadow_alias (when there is one) also predicts every
    # request off the response path; both predictions land in the prediction log.
    shadow_alias: str = Field("challenger", min_length=1)
    shadow: bool = False
    # Seconds between two registry checks for a moved alias (POST /v1/admin/reload: at once).
    poll_interval_s: float = Field(10.0, gt=0)
    # Dynamic micro-batching: concurrent requests share one forward pass of at most
    # max_batch_size inputs; a batch waits at most max_wait_ms for company (never when idle).
    max_batch_size: int = Field(32, ge=1, le=4096)
    max_wait_ms: float = Field(5.0, ge=0, le=1000)
    # Request limits: past them a request is refused with a 4xx naming the limit.
    max_texts_per_request: int = Field(256, ge=1)
    max_text_chars: int = Field(2000, ge=1)
    max_k: int = Field(100, ge=1)
    max_history: int = Field(200, ge=1)
    max_body_bytes: int = Field(1_048_576, ge=1024)
    # One row per served prediction: <dir>/<family>/date=YYYY-MM-DD/part-*.parquet
    # (ml.core.prediction_log), written by a background thread every prediction_log_flush_s.
    prediction_log_dir: Path = Path("data/predictions")
    prediction_log: bool = True
    prediction_log_flush_s: float = Field(2.0, gt=0)
    # auto: serve an intent version's ONNX export when its tags say it passed the accuracy
    # check (shopflow.fast_variant_ok), else the torch model; off: always the torch model.
    fast_variant: str = Field("auto", pattern="^(auto|off)$")

    @field_validator("fast_variant", mode="before")
    @classmethod
    def _yaml_off(cls, value: object) -> object:
        # YAML 1.1 reads a bare `off` (also in --set serving.fast_variant=off) as false.
        return "off" if value is False else value

    @field_validator("families")
    @classmethod
    def _no_repeats(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"families {value} lists a family twice")
        return value
