"""Settings of the recommender (params.yaml section ``recommender``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class RecommenderTrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Local Hugging Face folder for item text embeddings; null = the shipped MiniLM.
    text_model_path: Path | None = None
    dim: int = Field(64, ge=4)
    max_history: int = Field(20, ge=1)
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(256, ge=1)
    learning_rate: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1e-5, ge=0)
    early_stopping_patience: int = Field(3, ge=0)
    n_user_clusters: int = Field(8, ge=1)
    seed: int = 17


class RecommenderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    train: RecommenderTrainConfig = Field(default_factory=RecommenderTrainConfig)
    top_k: int = Field(20, ge=1)
