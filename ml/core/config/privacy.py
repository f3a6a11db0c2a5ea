"""Settings of the personal-data scrubber (params.yaml section ``privacy``)."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

# The placeholders a scrubbed text can hold, one per entity type (``<EMAIL>``, ...).
PII_ENTITIES = ("EMAIL", "PHONE", "CARD", "IBAN", "IP", "ADDRESS", "PERSON")


class PrivacyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Scrub utterance texts on their way from landing to paths.validated.
    enabled: bool = True
    # Entity types replaced by their placeholder; any subset of PII_ENTITIES.
    entities: list[str] = Field(default_factory=lambda: list(PII_ENTITIES))
    # Business ids that must survive (regexes): a detected span overlapping a match is kept.
    allow_list: list[str] = Field(default_factory=lambda: [r"\bORD-[0-9A-Z-]+\b", r"#\d{4,12}\b"])
    # Spans scored below this are kept (Presidio's phone recognizer scores 0.4).
    score_threshold: float = Field(0.35, ge=0.0, le=1.0)
    # Regions whose phone numbering plans are checked (libphonenumber region codes).
    phone_regions: list[str] = Field(
        default_factory=lambda: ["US", "GB", "DE", "FR", "ES", "IT", "NL", "IE", "CA", "AU", "IN"]
    )
    # First names (besides the built-in list) that mark "<Name> <Surname>" as a person.
    extra_first_names: list[str] = Field(default_factory=list)
    # Raw (unscrubbed) landing partitions that were accepted are deleted this many days after
    # their partition date by `validate`; null keeps them (then pruning is the operator's job).
    raw_retention_days: int | None = Field(None, ge=0)

    @field_validator("entities")
    @classmethod
    def _known_entities(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(PII_ENTITIES))
        if unknown:
            raise ValueError(f"unknown entities {unknown}; expected any of {list(PII_ENTITIES)}")
        return value

    @field_validator("allow_list")
    @classmethod
    def _compiles(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"allow_list pattern {pattern!r} is not a regex: {exc}") from exc
        return value
