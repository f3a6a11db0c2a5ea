"""Typed view of params.yaml, the single configuration source.

DVC stages read params.yaml directly; Airflow runs pass overrides (dotted keys, e.g.
``intent.train.epochs=2``) which are validated by the same models, so a bad value fails
before any work starts.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ml.core.config.data import GeneratorConfig
from ml.core.config.intent import IntentConfig
from ml.core.config.preprocess import PreprocessConfig
from ml.core.config.privacy import PrivacyConfig
from ml.core.config.recommender import RecommenderConfig
from ml.core.config.serving import ServingConfig
from ml.core.config.validation import ValidationConfig
from ml.core.errors import ConfigError

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


class S3LandingConfig(StrictModel):
    """``ingest.source: s3``: partitions the shop uploads to a bucket (AWS S3, MinIO, moto),
    laid out like data/landing: ``<prefix>/<dataset>/date=YYYY-MM-DD/part-*.csv|.parquet``.

    Credentials never live here: the environment (``AWS_*``) or the Airflow connection named by
    ``SHOPFLOW_AWS_CONN_ID``. What was ingested (key, ETag, size) is kept in
    ``<paths.landing>/.s3-ledger.json`` (ml.data.s3_landing).
    """

    bucket: str | None = None
    # Key prefix of the landing area in the bucket ("" = the bucket's root).
    prefix: str = ""
    # MinIO / moto only; null = AWS (or AWS_ENDPOINT_URL_S3 / the connection's endpoint_url).
    endpoint_url: str | None = None
    # null = AWS_DEFAULT_REGION / the connection's region_name.
    region: str | None = None
    # shop_ingest's wait for a new partition (a sensor in reschedule mode: no worker slot is
    # held between pokes). Seconds between two listings, and how long a run waits in all.
    sensor_poke_interval_s: int = Field(300, ge=1)
    sensor_timeout_s: int = Field(22 * 3600, ge=1)
    # True: a run in which nothing arrived ends skipped (ingest and validate skipped), not failed.
    sensor_soft_fail: bool = True


class IngestConfig(StrictModel):
    """What lands in ``paths.landing``.

    synthetic: the embedded shop generator (all three datasets).
    intent_file: an external intent data set (CSV/JSON) becomes one utterances partition;
    its official split, if it has one, travels with each row (``test_file``, ``val_file``,
    ``split_column``) and preprocessing keeps it instead of re-splitting those rows.
    directory: partitions dropped by the shop, laid out like data/landing, are copied in.
    s3: partitions (CSV or Parquet) uploaded to ``ingest.s3.bucket``/``prefix``, each new or
    re-uploaded object downloaded once (ml.data.s3_landing).
    """

    source: str = Field("synthetic", pattern="^(synthetic|intent_file|directory|s3)$")
    directory: Path | None = None
    s3: S3LandingConfig = Field(default_factory=S3LandingConfig)
    intent_file: Path | None = None
    text_column: str = "text"
    label_column: str = "label"
    # Stratified sample size for intent_file (null = all rows); official val and test rows
    # are never sampled.
    sample: int | None = Field(None, ge=1)
    # Partition date given to an intent_file (static data sets carry no dates of their own).
    partition_date: str = Field("2026-11-01", pattern=r"^\d{4}-\d{2}-\d{2}$")
    # Official splits (source intent_file only; same text/label columns as intent_file): every
    # row of test_file is split "test", of val_file "val"; split_column names a column of
    # intent_file whose values train/val/test (any case; empty = not assigned) fix a row's split.
    test_file: Path | None = None
    val_file: Path | None = None
    split_column: str | None = None


class MlflowConfig(StrictModel):
    tracking_uri: str = "sqlite:///mlflow.db"
    # Where new experiments put artifacts; null lets the tracking server decide.
    artifact_location: str | None = None
    intent_experiment: str = "intent-classifier"
    recommender_experiment: str = "recommender"
    intent_model_name: str = "intent-classifier"
    recommender_model_name: str = "recommender"


class MetricRule(StrictModel):
    """A threshold on one metric, used by the gate for the primary metric, guardrails and slices.

    Metrics: intent ``accuracy``, ``macro_f1``, ``ece``, ``mean_confidence``; recommender the mean
    of any numeric per-user column (``ndcg@10``, ``recall@20``, ``mrr``...); side metrics the
    gate measures itself, point estimates only: ``latency_ms``, recommender catalogue
    ``coverage@10`` (share of the catalogue in anyone's top 10).
    """

    metric: str
    # Value thresholds on the challenger's own value (the only ones checked on a first run).
    min_value: float | None = None
    max_value: float | None = None
    # Change thresholds on the improvement (challenger - champion, sign-flipped when lower is
    # better); negative means "may regress at most this much". Relative = improvement / |champion|.
    min_abs_change: float | None = None
    min_rel_change: float | None = None
    higher_is_better: bool = True
    # lower_bound: the change must hold for the bootstrap interval's lower bound (default);
    # point: the point estimate is enough (for noisy side metrics such as latency).
    judge_on: str = Field("lower_bound", pattern="^(lower_bound|point)$")

    def has_value_threshold(self) -> bool:
        return self.min_value is not None or self.max_value is not None

    def has_change_threshold(self) -> bool:
        return self.min_abs_change is not None or self.min_rel_change is not None


class BehaviourGateConfig(StrictModel):
    """Behavioural checks (CheckList-style suites in expectations/behaviour/) in the gate."""

    enabled: bool = True
    # Reject a challenger that fails more cases than the champion by more than this.
    max_extra_failures: int = Field(2, ge=0)
    # A suite file other than the family's expectations/behaviour/<family>.yaml.
    suite: str | None = None


class FamilyGateConfig(StrictModel):
    """Gate rules of one model family; no primary (or one without thresholds) never promotes."""

    primary: MetricRule | None = None
    guardrails: list[MetricRule] = Field(default_factory=list)
    # slice -> rule on that slice's metric. A slice is a boolean column (``cold_start``) or
    # ``column=value`` (``category=books``) of the evaluation frame.
    slices: dict[str, MetricRule] = Field(default_factory=dict)
    # Slices with fewer rows are reported but not judged (too noisy to block a release).
    min_slice_rows: int = Field(30, ge=1)
    behaviour: BehaviourGateConfig = Field(default_factory=BehaviourGateConfig)


class GateConfig(StrictModel):
    bootstrap_resamples: int = Field(2000, ge=1000)
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    seed: int = 0
    # Rows per timed batch when measuring latency_ms (0 = do not measure).
    latency_rows: int = Field(256, ge=0)
    intent: FamilyGateConfig = Field(default_factory=FamilyGateConfig)
    recommender: FamilyGateConfig = Field(default_factory=FamilyGateConfig)


class SchedulesConfig(StrictModel):
    """Cron schedules (UTC) of the Airflow DAGs; SHOPFLOW_<NAME>_SCHEDULE env vars win."""

    intent: str = "0 3 * * 1"
    recommender: str = "0 4 * * 1"
    ingest: str = "0 2 * * *"
    drift: str = "0 6 * * *"


class Params(StrictModel):
    seed: int = 42
    paths: PathsConfig = Field(default_factory=PathsConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    generator: GeneratorConfig = Field(default_factory=GeneratorConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    intent: IntentConfig = Field(default_factory=IntentConfig)
    recommender: RecommenderConfig = Field(default_factory=RecommenderConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    schedules: SchedulesConfig = Field(default_factory=SchedulesConfig)

    def digest(self) -> str:
        """A short stable hash of the effective configuration (a lineage tag)."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _parse_scalar(text: str) -> Any:
    """Parse an override value the way YAML would ("3" -> 3, "true" -> True, "[a]" -> list),
    and numbers YAML 1.1 leaves as strings as numbers ("5e-05" -> 5e-05)."""
    if text == "":
        return ""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value) if _NUMBER.match(value) else value
        except ValueError:
            return value
    return value


_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def parse_override_entry(entry: str) -> tuple[str, Any]:
    """``"section.key=value"`` -> (``"section.key"``, the typed value)."""
    if "=" not in entry:
        raise ConfigError(f"override {entry!r} is not of the form section.key=value")
    key, value = entry.split("=", 1)
    return key.strip(), _parse_scalar(value)


def format_override(key: str, value: Any) -> str:
    """The ``--set`` form of one override; :func:`parse_override_entry` reads it back."""
    return f"{key}={json.dumps(value)}"


def flatten_overrides(path: Path) -> dict[str, Any]:
    """A profile file (``@configs/x.yaml``) as dotted keys, leaves only."""
    flat: dict[str, Any] = {}

    def walk(node: dict[str, Any], prefix: str) -> None:
        for key, value in node.items():
            dotted = f"{prefix}{key}"
            if isinstance(value, dict) and value:
                walk(value, dotted + ".")
            else:
                flat[dotted] = value

    walk(_read_yaml_mapping(Path(path)), "")
    return flat


def _read_yaml_mapping(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """``overlay`` wins; nested mappings are merged key by key."""
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def apply_overrides(
    raw: dict[str, Any], overrides: dict[str, Any] | list[str] | None
) -> dict[str, Any]:
    """Apply overrides: dotted keys (``{"intent.train.epochs": 2}``, ``["intent.train.epochs=2"]``)
    or ``"@file.yaml"`` entries, deep-merged (a profile such as configs/bitext.yaml)."""
    if not overrides:
        return raw
    items: list[tuple[str, Any]]
    if isinstance(overrides, dict):
        items = list(overrides.items())
    else:
        items = []
        for entry in overrides:
            if entry.startswith("@"):
                raw = deep_merge(raw, _read_yaml_mapping(Path(entry[1:])))
                continue
            items.append(parse_override_entry(entry))
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
    raw = _read_yaml_mapping(path) if path.exists() else {}
    raw = apply_overrides(raw, overrides)
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{path}: invalid configuration: {problems}") from exc
