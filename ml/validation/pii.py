"""Personal data out of utterance texts before anything is kept (Presidio, no NER model).

Presidio's pattern recognizers (e-mail, phone via libphonenumber, card with the Luhn check,
IBAN with its checksum, IPv4/IPv6) plus the shop's own (street address, person name; see
:mod:`ml.validation.pii_recognizers`) find spans; spans overlapping an allow-listed business id
(``privacy.allow_list``, e.g. ``ORD-\\d+``) are kept; the anonymizer replaces every other span
with its typed placeholder (``<EMAIL>``, ``<PHONE>``, ...). Presidio wants a spaCy pipeline
for tokens; no model can be downloaded, so a blank English pipeline (tokenizer only) is saved
once to the temp folder and loaded by path. The engine is built once per settings and cached;
each distinct text of a batch is analysed once. Reports hold counts by type, never values.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ml.core.config.privacy import PrivacyConfig

# Placeholder type -> the Presidio entity that finds it.
PRESIDIO_ENTITY = {
    "EMAIL": "EMAIL_ADDRESS",
    "PHONE": "PHONE_NUMBER",
    "CARD": "CREDIT_CARD",
    "IBAN": "IBAN_CODE",
    "IP": "IP_ADDRESS",
    "ADDRESS": "STREET_ADDRESS",
    "PERSON": "PERSON",
}
PLACEHOLDER = {presidio: f"<{ours}>" for ours, presidio in PRESIDIO_ENTITY.items()}
OUR_ENTITY = {presidio: ours for ours, presidio in PRESIDIO_ENTITY.items()}


@dataclass(frozen=True)
class Span:
    entity: str  # EMAIL, PHONE, ... (the placeholder's name)
    start: int
    end: int
    score: float


@dataclass
class ScrubResult:
    texts: list[str]
    counts: Counter[str] = field(default_factory=Counter)  # entity -> spans replaced
    rows_with_pii: int = 0


def blank_spacy_dir() -> Path:
    """A blank English spaCy pipeline (tokenizer only) on disk, written once per spaCy version."""
    import spacy

    folder = Path(tempfile.gettempdir()) / f"shopflow-spacy-blank-en-{spacy.__version__}"
    if not (folder / "config.cfg").is_file():
        staging = Path(tempfile.mkdtemp(prefix="shopflow-spacy-"))
        spacy.blank("en").to_disk(staging)
        with contextlib.suppress(OSError):  # another process wrote it first
            staging.rename(folder)
    return folder


def _email_recognizer() -> Any:
    import tldextract
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    # The bundled public-suffix snapshot: tldextract's default would fetch the list online.
    offline = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    class OfflineEmailRecognizer(EmailRecognizer):  # type: ignore[misc]
        def validate_result(self, pattern_text: str) -> bool:
            return bool(offline(pattern_text).fqdn)

    return OfflineEmailRecognizer()


def _recognizers(cfg: PrivacyConfig) -> list[Any]:
    from presidio_analyzer import Pattern
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        IbanRecognizer,
        IpRecognizer,
    )

    from ml.validation.pii_recognizers import (
        address_recognizer,
        person_recognizer,
        phone_recognizer,
    )

    # American Express as printed (3782 822463 10005): Presidio's card pattern wants 4-4-4-4.
    AMEX_4_6_5 = Pattern("Amex 4-6-5", r"\b3[47]\d{2}[- ]?\d{6}[- ]?\d{5}\b", 0.3)

    return [
        _email_recognizer(),
        phone_recognizer(cfg.phone_regions),
        CreditCardRecognizer(patterns=[*CreditCardRecognizer.PATTERNS, AMEX_4_6_5]),
        IbanRecognizer(),
        IpRecognizer(),
        address_recognizer(),
        person_recognizer(cfg.extra_first_names),
    ]


@lru_cache(maxsize=4)
def _engines(cfg_json: str) -> tuple[Any, Any]:
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import SpacyNlpEngine
    from presidio_anonymizer import AnonymizerEngine

    cfg = PrivacyConfig.model_validate_json(cfg_json)
    nlp = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": str(blank_spacy_dir())}])
    registry = RecognizerRegistry(supported_languages=["en"])
    for recognizer in _recognizers(cfg):
        registry.add_recognizer(recognizer)
    analyzer = AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])
    return analyzer, AnonymizerEngine()


def engines(cfg: PrivacyConfig) -> tuple[Any, Any]:
    """(AnalyzerEngine, AnonymizerEngine) for these settings, built once per process."""
    return _engines(cfg.model_dump_json())


def _allowed(text: str, patterns: list[str]) -> list[tuple[int, int]]:
    return [m.span() for p in patterns for m in re.finditer(p, text)]


# Validation looks at each utterance before the accepted partition is scrubbed: analyse a text
# once per process. Longer texts are not kept (they are rare and the analysis is cheap to redo).
_CACHED_TEXT_CHARS = 4096


def find_pii(text: str, cfg: PrivacyConfig) -> list[Span]:
    """The personal-data spans of one text, in text order: allow-listed ones removed, and of
    overlapping spans the higher-scored one kept (a card's digits are not also a phone)."""
    if not text or not text.strip():
        return []
    if len(text) <= _CACHED_TEXT_CHARS:
        return list(_find_pii_cached(text, cfg.model_dump_json()))
    return _analyse(text, cfg)


@lru_cache(maxsize=100_000)
def _find_pii_cached(text: str, cfg_json: str) -> tuple[Span, ...]:
    return tuple(_analyse(text, PrivacyConfig.model_validate_json(cfg_json)))


def _analyse(text: str, cfg: PrivacyConfig) -> list[Span]:
    analyzer, _ = engines(cfg)
    wanted = [PRESIDIO_ENTITY[e] for e in cfg.entities]
    results = analyzer.analyze(
        text=text, language="en", entities=wanted, score_threshold=cfg.score_threshold
    )
    allowed = _allowed(text, cfg.allow_list)
    spans = [
        Span(OUR_ENTITY[r.entity_type], r.start, r.end, float(r.score))
        for r in results
        if not any(r.start < end and start < r.end for start, end in allowed)
    ]
    return _resolve_overlaps(spans)


def _resolve_overlaps(spans: list[Span]) -> list[Span]:
    """Keep the higher-scored (then longer) of overlapping spans."""
    kept: list[Span] = []
    for span in sorted(spans, key=lambda s: (-s.score, s.start - s.end, s.start)):
        if not any(span.start < k.end and k.start < span.end for k in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: s.start)


def scrub_text(text: str, cfg: PrivacyConfig) -> tuple[str, list[Span]]:
    """``text`` with each personal-data span replaced by its placeholder, and the spans."""
    from presidio_anonymizer.entities import OperatorConfig, RecognizerResult

    spans = find_pii(text, cfg)
    if not spans:
        return text, []
    _, anonymizer = engines(cfg)
    results = [RecognizerResult(PRESIDIO_ENTITY[s.entity], s.start, s.end, s.score) for s in spans]
    operators = {
        presidio: OperatorConfig("replace", {"new_value": placeholder})
        for presidio, placeholder in PLACEHOLDER.items()
    }
    scrubbed = anonymizer.anonymize(text=text, analyzer_results=results, operators=operators)
    return str(scrubbed.text), spans


def _mask(span: Span) -> str:
    """The span's placeholder padded (or cut) to the span's length: ``<EMAIL>__________``."""
    width = span.end - span.start
    return f"<{span.entity}>".ljust(width, "_")[:width]


def mask_for_validation(texts: Iterable[Any], cfg: PrivacyConfig, max_chars: int) -> list[Any]:
    """Texts as the validation gate's rules see them: every personal-data span overwritten by its
    placeholder at the same length, and a text over ``max_chars`` (which fails the length rule
    anyway) overwritten whole with ``#`` without being analysed. Lengths, nulls and types are
    unchanged, so each rule judges the delivery as sent, while the failure examples in reports,
    GE's stores and Data Docs quote no personal data (the raw partition stays in quarantine)."""
    masked: list[Any] = []
    for value in texts:
        if not isinstance(value, str) or not cfg.enabled:
            masked.append(value)
        elif len(value) > max_chars:
            masked.append("#" * len(value))
        else:
            out, last = [], 0
            for span in find_pii(value, cfg):
                out += [value[last : span.start], _mask(span)]
                last = span.end
            masked.append("".join([*out, value[last:]]))
    return masked


def scrub_texts(texts: Iterable[Any], cfg: PrivacyConfig) -> ScrubResult:
    """Scrub a column of texts (None/NaN/non-strings pass unchanged); each distinct text once."""
    values = list(texts)
    cache: dict[str, tuple[str, list[Span]]] = {}
    result = ScrubResult(texts=[])
    for value in values:
        if not isinstance(value, str) or not cfg.enabled:
            result.texts.append(value)
            continue
        if value not in cache:
            cache[value] = scrub_text(value, cfg)
        scrubbed, spans = cache[value]
        result.texts.append(scrubbed)
        result.counts.update(s.entity for s in spans)
        result.rows_with_pii += bool(spans)
    return result


def pii_report(result: ScrubResult, rows: int, cfg: PrivacyConfig) -> dict[str, Any]:
    """What was scrubbed, as counts by entity type (never a value)."""
    return {
        "enabled": cfg.enabled,
        "rows": rows,
        "rows_with_pii": result.rows_with_pii,
        "spans": sum(result.counts.values()),
        "counts": {entity: int(result.counts.get(entity, 0)) for entity in cfg.entities},
    }


def scrub_csv(source: Path, target: Path, column: str, cfg: PrivacyConfig) -> ScrubResult:
    """Copy a CSV file with ``column`` scrubbed; other cells keep their text. A file without
    personal data is copied byte for byte."""
    import csv
    import io
    import shutil

    rows = list(csv.reader(io.StringIO(source.read_text(encoding="utf-8"), newline="")))
    header, body = (rows[0], rows[1:]) if rows else ([], [])
    if column not in header:
        shutil.copy2(source, target)
        return ScrubResult(texts=[])
    index = header.index(column)
    result = scrub_texts([row[index] if index < len(row) else None for row in body], cfg)
    if not result.counts:
        shutil.copy2(source, target)
        return result
    for row, text in zip(body, result.texts, strict=True):
        if text is not None:
            row[index] = text
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    target.write_bytes(buffer.getvalue().encode("utf-8"))
    return result


PII_REPORT_NAME = "pii.json"


def scrub_parquet(source: Path, target: Path, column: str, cfg: PrivacyConfig) -> ScrubResult:
    """Copy a Parquet file with ``column`` scrubbed (copied as is when nothing is found)."""
    import shutil

    import pandas as pd

    frame = pd.read_parquet(source)
    result = scrub_texts(frame.get(column, []), cfg)
    if not result.counts:
        shutil.copy2(source, target)
        return result
    frame[column] = result.texts
    frame.to_parquet(target, index=False)
    return result


def scrub_partition(
    files: list[Path], target: Path, cfg: PrivacyConfig, column: str = "text"
) -> dict[str, Any]:
    """Write ``files`` into ``target`` with ``column`` scrubbed, and ``pii.json`` (counts only)
    beside them; returns that report."""
    import json

    total = ScrubResult(texts=[])
    rows = 0
    for file in files:
        if file.suffix.lower() == ".parquet":
            result = scrub_parquet(file, target / file.name, column, cfg)
        else:
            result = scrub_csv(file, target / file.name, column, cfg)
        total.counts.update(result.counts)
        total.rows_with_pii += result.rows_with_pii
        rows += len(result.texts)
    report = pii_report(total, rows, cfg)
    (target / PII_REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report
