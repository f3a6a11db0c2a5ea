"""What every intent predictor shares, whatever runs the network (torch or ONNX Runtime).

The bundle's settings (``intent_meta.json``: labels, out-of-scope threshold, max_length, ...),
length-sorted batching of tokenised texts, and the contract output of ``predict`` (label,
confidence, raw_label) with its rules for bad rows and the threshold. One definition, so the
torch model and its ONNX export answer the same way. No torch import here: the ONNX path does
not need it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.core.errors import InputError
from ml.models.intent.data import pad_ids, sorted_batches, tokenize

META_FILE = "intent_meta.json"

# (input_ids, attention_mask) int64 arrays of one padded batch -> probabilities (batch, labels).
BatchScorer = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class BundleMeta:
    """The settings a bundle carries in ``intent_meta.json`` (the rest of the file is kept in
    ``raw``)."""

    labels: list[str]
    threshold: float
    max_length: int
    oos_label: str = "out_of_scope"
    max_text_chars: int = 2000
    batch_size: int = 64
    raw: dict[str, Any] | None = None


def read_meta(folder: str | Path) -> BundleMeta:
    """``<folder>/intent_meta.json``; an InputError when the folder is not an intent model."""
    path = Path(folder) / META_FILE
    if not path.is_file():
        raise InputError(f"{folder} is not an intent model folder (no {META_FILE})")
    meta = json.loads(path.read_text(encoding="utf-8"))
    return BundleMeta(
        labels=[str(label) for label in meta["labels"]],
        threshold=float(meta["threshold"]),
        max_length=int(meta["max_length"]),
        oos_label=str(meta.get("oos_label", "out_of_scope")),
        max_text_chars=int(meta.get("max_text_chars", 2000)),
        batch_size=int(meta.get("batch_size", 64)),
        raw=meta,
    )


def batched_proba(
    tokenizer: Any,
    texts: Sequence[str],
    score_batch: BatchScorer,
    *,
    n_labels: int,
    max_length: int,
    batch_size: int,
    show_progress: bool = False,
) -> np.ndarray:
    """Class probabilities (n, n_labels) in input order: tokenised once, scored in length-sorted
    batches padded to their own longest text (little padding)."""
    from ml.core.progress import progress

    out = np.zeros((len(texts), n_labels), dtype=np.float32)
    if len(texts) == 0:
        return out
    ids = tokenize(tokenizer, texts, max_length)
    pad_id = tokenizer.pad_token_id or 0
    batches = sorted_batches([len(x) for x in ids], batch_size)
    for batch in progress(batches, desc="scoring", unit="batch", disable=not show_progress):
        input_ids, mask = pad_ids([ids[i] for i in batch], pad_id)
        out[batch] = score_batch(input_ids, mask)
    return out


def clip_texts(texts: Sequence[str], max_text_chars: int) -> list[str]:
    """Huge texts are cut to ``max_text_chars`` characters before tokenising."""
    return [t[:max_text_chars] for t in texts]


def apply_threshold(
    raw_labels: Sequence[str], confidence: np.ndarray, threshold: float, oos_label: str
) -> list[str]:
    """Predictions whose confidence is below the threshold become ``oos_label``."""
    return [
        oos_label if c < threshold else lab for lab, c in zip(raw_labels, confidence, strict=True)
    ]


def predictions_frame(
    texts: Sequence[Any],
    predict_proba: Callable[[list[str]], np.ndarray],
    *,
    labels: Sequence[str],
    threshold: float,
    oos_label: str,
) -> pd.DataFrame:
    """Contract output (ml.core.schemas.INTENT_PYFUNC_OUTPUT): label, confidence, raw_label.

    Defined results for bad rows: a missing, non-string or blank text gets label ``oos_label``,
    confidence 0.0 and raw_label "" (``predict_proba`` never sees it); the threshold turns a
    low-confidence argmax into ``oos_label``.
    """
    valid = [isinstance(t, str) and t.strip() != "" for t in texts]
    good = [t for t, ok in zip(texts, valid, strict=True) if ok]
    probs = predict_proba(good) if good else np.zeros((0, len(labels)))
    out = pd.DataFrame(
        {
            "label": [oos_label] * len(texts),
            "confidence": np.zeros(len(texts), dtype=np.float64),
            "raw_label": [""] * len(texts),
        }
    )
    if good:
        rows = np.flatnonzero(valid)
        raw = probs.argmax(axis=1)
        conf = probs.max(axis=1).astype(np.float64)
        raw_labels = [labels[i] for i in raw]
        out.loc[rows, "raw_label"] = raw_labels
        out.loc[rows, "confidence"] = conf
        out.loc[rows, "label"] = apply_threshold(raw_labels, conf, threshold, oos_label)
    return out
