"""Options of one drift check, shared by the ``drift`` command line and the drift_monitor DAG's
trigger form (ml.orchestration.params builds the form from this model). Pydantic only: cheap to
import for ``--help`` and DAG parsing."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

THRESHOLD_PATTERN = r"^[a-z_]+=[0-9.]+$"


class DriftRunOptions(BaseModel):
    """Options of one drift check (``drift`` command line, drift_monitor trigger form)."""

    model_config = ConfigDict(extra="forbid")

    sample: int = Field(
        500,
        ge=10,
        le=20000,
        title="Sample size",
        description="Utterances per side (reference, new) embedded for the centroid distance.",
    )
    model_path: str | None = Field(
        None,
        title="Embedding model folder",
        description="Local Hugging Face folder for utterance embeddings "
        "(empty = intent.train.model_path, else the shipped all-MiniLM-L6-v2).",
    )
    thresholds: list[Annotated[str, StringConstraints(pattern=THRESHOLD_PATTERN)]] = Field(
        default_factory=list,
        title="Threshold overrides",
        description="name=value entries, e.g. label_tv=0.2 (names: DriftThresholds).",
    )
