"""Scoring utterances with a registered or local intent model: one text, or a CSV/Parquet file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ml.core.errors import InputError
from ml.models.intent.scoring import load_intent_model, predict_texts


def check_text(text: Any, *, max_chars: int = 20000) -> str:
    """Empty/blank or non-string input is an InputError (a user typed nothing useful); text over
    ``max_chars`` characters is refused too, rather than silently judged on a prefix."""
    if not isinstance(text, str):
        raise InputError(f"text must be a string, got {type(text).__name__}")
    if not text.strip():
        raise InputError("text is empty: give an utterance to classify")
    if len(text) > max_chars:
        raise InputError(f"text is {len(text)} characters long; the limit is {max_chars}")
    return text


def predict_text(model: Any, text: Any, *, max_chars: int = 20000) -> dict[str, Any]:
    """One utterance -> {text, label, confidence, raw_label} (see check_text for bad input)."""
    check_text(text, max_chars=max_chars)
    row = predict_texts(load_intent_model(model), [text]).iloc[0]
    return {
        "text": text,
        "label": str(row["label"]),
        "confidence": float(row["confidence"]),
        "raw_label": str(row["raw_label"]),
    }


def read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise InputError(f"input file {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix in {".csv", ".tsv"}:
            # utf-8-sig: CSVs saved by spreadsheet tools often start with a BOM.
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", encoding="utf-8-sig")
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    raise InputError(f"{path}: unsupported file type {suffix!r} (use .csv, .tsv or .parquet)")


def predict_file(
    model: Any, input_path: str | Path, output_path: str | Path, *, text_column: str = "text"
) -> dict[str, Any]:
    """Batch scoring: the input's columns plus label, confidence, raw_label (Parquet or CSV out).

    Rows with a missing, non-string or blank text get label out_of_scope and confidence 0.0
    (see IntentModel.predict) instead of failing the whole file.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    df = read_table(input_path)
    if text_column not in df.columns:
        raise InputError(f"{input_path}: no column {text_column!r} (columns: {list(df.columns)})")
    texts = [t if isinstance(t, str) else None for t in df[text_column].tolist()]
    scores = predict_texts(load_intent_model(model), texts)
    out = df.reset_index(drop=True).copy()
    for col in ("label", "confidence", "raw_label"):
        out[f"pred_{col}" if col in df.columns else col] = scores[col].to_numpy()
    output_path.parent.mkdir(parents=True, exist_ok=True)
    if output_path.suffix.lower() == ".csv":
        out.to_csv(output_path, index=False)
    else:
        out.to_parquet(output_path, index=False)
    invalid = sum(t is None or not t.strip() for t in texts)
    return {
        "input": str(input_path),
        "output": str(output_path),
        "rows": len(out),
        "invalid_text_rows": invalid,
        "label_counts": out["label" if "label" not in df.columns else "pred_label"]
        .value_counts()
        .head(20)
        .to_dict(),
    }
