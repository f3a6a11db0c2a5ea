"""Settings of the validation gate (params.yaml section ``validation``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ValidationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Intent labels that may appear for the first time without failing validation.
    allowed_new_labels: list[str] = Field(default_factory=list)
    # The known label set; null = the labels seen in already validated data (or the generator's).
    labels: list[str] | None = None
    min_rows: int = Field(1, ge=1)
    min_per_label: int = Field(3, ge=0)
    text_min_chars: int = Field(1, ge=0)
    text_max_chars: int = Field(512, ge=1)
    # Catalog descriptions are longer than titles or utterances.
    description_max_chars: int = Field(4000, ge=1)
    # Largest allowed total-variation distance between a partition's label distribution and the
    # reference (already validated data).
    label_distribution_tolerance: float = Field(0.25, gt=0, le=1)
    # Events may not be later than "now" plus this skew.
    max_clock_skew_minutes: int = Field(10, ge=0)
    data_docs: bool = True
