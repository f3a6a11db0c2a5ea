"""Settings of preprocessing (params.yaml section ``preprocess``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ml.core.config.interactions_import import InteractionImportConfig


class IntentSplitConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # hash: each text's split is a function of its normalised text alone, so the test set is
    # stable across retrains. stratified: per-label split for static data sets without one.
    method: str = Field("hash", pattern="^(hash|stratified)$")
    val_fraction: float = Field(0.1, gt=0, lt=0.5)
    test_fraction: float = Field(0.15, gt=0, lt=0.5)
    salt: str = "shopflow-v1"


class IntentPreprocessConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    split: IntentSplitConfig = Field(default_factory=IntentSplitConfig)
    lowercase: bool = False


class InteractionPreprocessConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Which events make a user's item sequence, with their order of strength.
    event_types: list[str] = Field(default_factory=lambda: ["purchase", "add_to_cart"])
    # Users need at least this many distinct items to get a val and a test target.
    min_sequence_length: int = Field(3, ge=3)
    max_history: int = Field(50, ge=1)


class PreprocessConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    intent: IntentPreprocessConfig = Field(default_factory=IntentPreprocessConfig)
    interactions: InteractionPreprocessConfig = Field(default_factory=InteractionPreprocessConfig)
    # `python -m ml import-interactions` (not a DVC stage: an alternative to the shop's data).
    import_interactions: InteractionImportConfig = Field(default_factory=InteractionImportConfig)
