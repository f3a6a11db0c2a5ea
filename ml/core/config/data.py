"""Settings of the synthetic shop generator (params.yaml section ``generator``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class DriftConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # 0 = none, 1 = strong. Applied from day ``start_day`` (0-based) on.
    strength: float = Field(0.0, ge=0.0, le=1.0)
    start_day: int = Field(0, ge=0)
    new_phrasing: bool = True
    # Share of a drifted day's utterances that use the new phrasings (default 0.5 x strength):
    # customers can change how they talk without changing what they ask for.
    phrasing_share: float | None = Field(None, ge=0.0, le=1.0)
    new_items: int = Field(0, ge=0)
    shift_preferences: bool = True


class GeneratorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seed: int = 7
    start_date: str = "2026-11-01"
    first_day: int = Field(
        0,
        ge=0,
        title="First day",
        description="Synthetic shop: index of the first day to generate (0 = start_date).",
    )
    days: int = Field(
        3, ge=1, le=365, title="Days", description="Synthetic shop: number of days to generate."
    )
    n_items: int = Field(2000, ge=20)
    n_categories: int = Field(20, ge=2)
    n_users: int = Field(1500, ge=10)
    sessions_per_user_per_day: float = Field(0.6, gt=0)
    utterances_per_day: int = Field(1500, ge=10)
    typo_rate: float = Field(0.05, ge=0, le=1)
    casing_noise_rate: float = Field(0.1, ge=0, le=1)
    label_noise_rate: float = Field(0.01, ge=0, le=1)
    out_of_scope_rate: float = Field(0.05, ge=0, le=1)
    popularity_alpha: float = Field(1.1, gt=0)
    # Share of utterances given one piece of realistic personal data (ml/data/pii_samples.py;
    # for scrubber tests and benches). 0 keeps every text as it was.
    pii_rate: float = Field(0.0, ge=0, le=1)
    drift: DriftConfig = Field(default_factory=DriftConfig)
