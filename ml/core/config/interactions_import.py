"""Settings of ``python -m ml import-interactions`` (params.yaml
``preprocess.import_interactions``): an interactions table and an items table (CSV or Parquet)
-> the processed recsys files."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class InteractionColumns(BaseModel):
    """Column names in the interactions table."""

    model_config = ConfigDict(extra="forbid")

    user: str = "user_id"
    item: str = "item_id"
    # ISO 8601 text, a Parquet timestamp, or numbers (epoch time in ``timestamp_unit``).
    timestamp: str = "timestamp"
    event_type: str | None = None
    rating: str | None = None


class ItemColumns(BaseModel):
    """Column names in the items table; null = the processed column is left empty."""

    model_config = ConfigDict(extra="forbid")

    item: str = "item_id"
    # The text the recommender embeds: these columns' non-empty values joined with ". ".
    text: list[str] = Field(default_factory=lambda: ["title"], min_length=1)
    title: str | None = "title"
    category: str | None = None
    brand: str | None = None
    price: str | None = None
    description: str | None = None


class InteractionImportConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # .csv / .tsv / .parquet files (--interactions / --items on the command line win).
    interactions: Path | None = None
    items: Path | None = None
    interaction_columns: InteractionColumns = Field(default_factory=InteractionColumns)
    item_columns: ItemColumns = Field(default_factory=ItemColumns)
    timestamp_unit: Literal["s", "ms", "us", "ns"] = "s"
    # Filters: keep only these event types (null = all), only ratings >= min_rating (null = all).
    event_types: list[str] | None = None
    min_rating: float | None = None
    # As preprocess.interactions: users with fewer distinct items only contribute to training;
    # val/test histories keep the last max_history items.
    min_sequence_length: int = Field(3, ge=3)
    max_history: int = Field(50, ge=1)

    @model_validator(mode="after")
    def _filters_have_columns(self) -> InteractionImportConfig:
        if self.event_types is not None and self.interaction_columns.event_type is None:
            raise ValueError("event_types needs interaction_columns.event_type")
        if self.min_rating is not None and self.interaction_columns.rating is None:
            raise ValueError("min_rating needs interaction_columns.rating")
        return self
