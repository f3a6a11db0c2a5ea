"""Typed view of params.yaml, the single configuration source.

DVC stages read params.yaml directly; Airflow runs pass overrides (dotted keys, e.g.
``intent.train.epochs=2``) which are validated by the same models, so a bad value fails
before any work starts.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ml.data.config import GeneratorConfig
from ml.errors import ConfigError
from ml.intent.config import IntentConfig
from ml.preprocess.config import PreprocessConfig
from ml.recommender.config import RecommenderConfig
from ml.validation.config import ValidationConfig

DEFAULT_PARAMS = Path("params.yaml")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PathsConfig(StrictModel):
    """Where each stage reads and writes, relative to the project root."""

    landing: Path = Path("data/landing")
    validated: Path = Path("data/validated")
    quarantine: Path = Path("data/quarantine")
    processed: Path = Path("data/processed")
    models: Path = Path("models")
    reports: Path = Path("reports")


class IngestConfig(StrictModel):
    """What lands in ``paths.landing``: the synthetic shop or an external intent data set."""

    source: str = Field("synthetic", pattern="^(synthetic|bitext|directory)$")
    # For source=directory: a folder laid out like data/landing (<dataset>/date=YYYY-MM-DD/).
    directory: Path | None = None
    # For source=bitext: the CSV and how many stratified rows to take (null = all).
    bitext_path: Path = Path("../shared/data/bitext_customer_support/bitext_customer_support_20k.csv")
    bitext_sample: int | None = None


class MlflowConfig(StrictModel):
    tracking_uri: str = "sqlite:///mlflow.db"
    # Where new experiments put artifacts; null lets the tracking server decide.
    artifact_location: str | None = None
    intent_experiment: str = "intent-classifier"
    recommender_experiment: str = "recommender"
    intent_model_name: str = "intent-classifier"
    recommender_model_name: str = "recommender"


class MetricRule(StrictModel):
    """A threshold on one metric, used by the gate for the primary metric and guardrails."""

    metric: str
    # Value thresholds on the challenger's own value.
    min_value: float | None = None
    max_value: float | None = None
    # Change thresholds on challenger - champion; negative means "may regress at most this much".
    min_abs_change: float | None = None
    min_rel_change: float | None = None
    higher_is_better: bool = True


class FamilyGateConfig(StrictModel):
    primary: MetricRule | None = None
    guardrails: list[MetricRule] = Field(default_factory=list)
    # slice name -> rule applied to that slice's metric
    slices: dict[str, MetricRule] = Field(default_factory=dict)


class GateConfig(StrictModel):
    bootstrap_resamples: int = Field(2000, ge=1000)
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    seed: int = 0
    intent: FamilyGateConfig = Field(default_factory=FamilyGateConfig)
    recommender: FamilyGateConfig = Field(default_factory=FamilyGateConfig)


class Params(StrictModel):
    seed: int = 42
    paths: PathsConfig = Field(default_factory=PathsConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    generator: GeneratorConfig = Field(default_factory=GeneratorConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    intent: IntentConfig = Field(default_factory=IntentConfig)
    recommender: RecommenderConfig = Field(default_factory=RecommenderConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)

    def digest(self) -> str:
        """A short stable hash of the effective configuration (a lineage tag)."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _parse_scalar(text: str) -> Any:
    """Parse an override value the way YAML would ("3" -> 3, "true" -> True, "[a]" -> list)."""
    return yaml.safe_load(text) if text != "" else ""


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any] | list[str] | None) -> dict[str, Any]:
    """Apply dotted-key overrides (``{"intent.train.epochs": 2}`` or ``["intent.train.epochs=2"]``)."""
    if not overrides:
        return raw
    items: list[tuple[str, Any]]
    if isinstance(overrides, dict):
        items = list(overrides.items())
    else:
        items = []
        for entry in overrides:
            if "=" not in entry:
                raise ConfigError(f"override {entry!r} is not of the form section.key=value")
            key, value = entry.split("=", 1)
            items.append((key.strip(), _parse_scalar(value)))
    for dotted, value in items:
        node = raw
        parts = dotted.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {dotted!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = value
    return raw


def load_params(
    path: str | Path = DEFAULT_PARAMS, overrides: dict[str, Any] | list[str] | None = None
) -> Params:
    """Load and validate params.yaml; a missing file means all defaults."""
    path = Path(path)
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: top level must be a mapping, got {type(raw).__name__}")
    raw = apply_overrides(raw, overrides)
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{path}: invalid configuration: {problems}") from exc
