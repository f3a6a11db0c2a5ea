"""Utterances -> train/val/test Parquet and a label map.

The split of a text is decided by a hash of its normalised form (``method: hash``): the same
text always lands in the same split, so the test set stays stable as data grows and a text can
never be in train and test at once. Static data sets without an official split use a
per-label (stratified) split instead, still ordered by the same hash so it is reproducible.

A data set's official split (the optional ``split`` column of the utterances contract, e.g. a
published benchmark's frozen test fold) wins: such rows keep their split and are never
re-hashed. When official test rows exist, the rows without a split are divided into train and
val only; when official val rows exist too, they all go to train. A text that is in an official
test row (then val, then train) and elsewhere keeps that split; its other copies are dropped
(``cross_split_duplicates_removed``). ``split_policy`` in stats.json says in words what was done.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.core.config.preprocess import IntentPreprocessConfig, IntentSplitConfig
from ml.core.errors import InputError
from ml.core.schemas import (
    INTENT_FIRST_SEEN,
    INTENT_PROCESSED_COLUMNS,
    OFFICIAL_SPLITS,
    UTTERANCE_COLUMNS,
    UTTERANCE_OPTIONAL_COLUMNS,
    UTTERANCE_SPLIT,
)
from ml.preprocess.io import read_validated

_SPACES = re.compile(r"\s+")
SPLITS = ("train", "val", "test")
# Column of the working frame with each row's official split ("" = none).
OFFICIAL = "official"
# Which copy of a text wins when it is in rows of several official splits ("" = none).
_PRIORITY = {"test": 0, "val": 1, "train": 2, "": 3}


def normalise_text(text: str, lowercase: bool = False) -> str:
    """NFKC, collapse whitespace, strip; optionally lowercase."""
    text = _SPACES.sub(" ", unicodedata.normalize("NFKC", text)).strip()
    return text.lower() if lowercase else text


def text_key(text: str) -> str:
    """Identity of a text for dedup and splitting: case- and whitespace-insensitive."""
    return hashlib.sha256(text.casefold().encode("utf-8")).hexdigest()


def unit_hash(key: str, salt: str) -> float:
    """A deterministic number in [0, 1) for a key."""
    digest = hashlib.sha256(f"{salt}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def deduplicate(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """One row per text key; conflicting labels resolve to the most frequent (then first seen)."""
    df = df.assign(order=np.arange(len(df)))
    votes = (
        df.groupby(["key", "label"], sort=False)["order"]
        .agg(["size", "min"])
        .reset_index()
        .sort_values(["key", "size", "min"], ascending=[True, False, True])
    )
    winners = votes.drop_duplicates("key").set_index("key")["label"]
    conflicts = int((votes.groupby("key").size() > 1).sum())
    out = df.drop_duplicates("key").set_index("key")
    out["label"] = winners
    out = out.reset_index().drop(columns="order")
    return out, {"duplicates_removed": len(df) - len(out), "label_conflicts": conflicts}


def official_splits(values: pd.Series) -> pd.Series:
    """The validated ``split`` column as train/val/test or "" (none); anything else is an error
    (validation rejects it, so the validated area was edited by hand)."""
    norm = values.fillna("").astype(str).str.strip().str.lower()
    bad = sorted(set(norm) - {*OFFICIAL_SPLITS, ""})
    if bad:
        raise InputError(
            f"validated utterances: column {UTTERANCE_SPLIT!r} has values other than "
            f"{', '.join(OFFICIAL_SPLITS)} or empty: {bad[:5]}"
        )
    return norm


def drop_cross_split_copies(df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Keep only the copies of each text (``key``) in its highest official split (test, then
    val, then train, then none); returns the rest and how many rows were dropped."""
    rank = df[OFFICIAL].map(_PRIORITY)
    keep = rank == rank.groupby(df["key"]).transform("min")
    return df[keep].reset_index(drop=True), int((~keep).sum())


def free_targets(official: pd.Series) -> tuple[str, ...]:
    """The splits rows without an official one may go to: none that has official rows
    (train always)."""
    present = set(official)
    return tuple(s for s in SPLITS if s == "train" or s not in present)


def _split_free(df: pd.DataFrame, split: IntentSplitConfig, targets: tuple[str, ...]) -> pd.Series:
    """Hash or stratified split of rows without an official split, into ``targets`` only."""
    test_f = split.test_fraction if "test" in targets else 0.0
    val_f = split.val_fraction if "val" in targets else 0.0
    u = np.array([unit_hash(k, split.salt) for k in df["key"]])
    if split.method == "hash":
        out = np.where(u < test_f, "test", np.where(u < test_f + val_f, "val", "train"))
        return pd.Series(out, index=df.index)
    result = pd.Series("train", index=df.index)
    order = pd.Series(u, index=df.index)
    for _, group in df.groupby("label", sort=True):
        ranked = order.loc[group.index].sort_values().index
        n = len(ranked)
        # Labels with >= 3 texts get at least one test and one val text (when those are targets).
        n_test = max(1, math.floor(n * test_f)) if n >= 3 and test_f > 0 else 0
        n_val = max(1, math.floor(n * val_f)) if n >= 3 and val_f > 0 else 0
        result.loc[ranked[:n_test]] = "test"
        result.loc[ranked[n_test : n_test + n_val]] = "val"
    return result


def assign_splits(df: pd.DataFrame, cfg: IntentPreprocessConfig) -> pd.Series:
    """The split of each row ("train", "val" or "test"): its official one (column ``official``,
    optional) or, for rows without, the configured method over :func:`free_targets`."""
    official = df[OFFICIAL] if OFFICIAL in df.columns else pd.Series("", index=df.index)
    result = official.astype(object).copy()
    free = official == ""
    if free.any():
        result[free] = _split_free(df[free], cfg.split, free_targets(official))
    return result.astype(str)


def split_policy(official: pd.Series, method: str) -> str:
    """In words: which official splits were kept and how the other rows were split."""

    def rows(n: int) -> str:
        return f"{n} row" if n == 1 else f"{n} rows"

    counts = official.value_counts()
    kept = [f"official {s} ({rows(counts[s])})" for s in ("test", "val", "train") if s in counts]
    if not kept:
        return f"{method} (no official split)"
    rest = int(counts.get("", 0))
    targets = free_targets(official)
    if rest == 0:
        how = "no rows without one"
    elif targets == ("train",):
        how = f"train for the rest ({rows(rest)})"
    else:
        how = f"{method} {'/'.join(targets)} from the rest ({rows(rest)})"
    return " + ".join([*kept, how])


def _duplicates_by_split(before: pd.Series, after: pd.Series) -> dict[str, int]:
    """Rows removed as within-split duplicates, per official split ("unassigned" = none)."""
    b, a = before.value_counts(), after.value_counts()
    return {s or "unassigned": int(b.get(s, 0) - a.get(s, 0)) for s in (*OFFICIAL_SPLITS, "")}


def preprocess_intent(
    validated_root: Path, out_dir: Path, cfg: IntentPreprocessConfig
) -> dict[str, Any]:
    """Validated utterance partitions -> ``out_dir/{train,val,test}.parquet`` + label_map.json."""
    raw = read_validated(
        validated_root, "utterances", UTTERANCE_COLUMNS, optional=UTTERANCE_OPTIONAL_COLUMNS
    )
    df = pd.DataFrame(
        {
            "text": [normalise_text(t, cfg.lowercase) for t in raw["text"]],
            "label": raw["intent"].str.strip(),
            INTENT_FIRST_SEEN: raw["partition"],
            OFFICIAL: official_splits(raw[UTTERANCE_SPLIT]),
        }
    )
    df = df[df["text"] != ""].reset_index(drop=True)
    df["key"] = [text_key(t) for t in df["text"]]
    df, cross_split = drop_cross_split_copies(df)
    before = df[OFFICIAL]
    df, dedup_stats = deduplicate(df)
    by_split = _duplicates_by_split(before, df[OFFICIAL])
    df["example_id"] = df["key"].str[:16]
    df["split"] = assign_splits(df, cfg)
    labels = sorted(df["label"].unique())
    out_dir.mkdir(parents=True, exist_ok=True)
    counts: dict[str, dict[str, int]] = {}
    for name in SPLITS:
        part = df[df["split"] == name].sort_values("example_id")
        columns = [*INTENT_PROCESSED_COLUMNS, INTENT_FIRST_SEEN]
        part[columns].to_parquet(out_dir / f"{name}.parquet", index=False)
        counts[name] = {k: int(v) for k, v in part["label"].value_counts().sort_index().items()}
    (out_dir / "label_map.json").write_text(
        json.dumps({"labels": labels}, indent=2) + "\n", encoding="utf-8"
    )
    stats = {
        "rows_in": len(raw),
        "rows_out": len(df),
        **dedup_stats,
        "duplicates_removed_by_split": by_split,
        "cross_split_duplicates_removed": cross_split,
        "split_method": cfg.split.method,
        "split_policy": split_policy(df[OFFICIAL], cfg.split.method),
        "split_sizes": {name: sum(c.values()) for name, c in counts.items()},
        "labels": len(labels),
        "per_label": counts,
    }
    (out_dir / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    return {k: v for k, v in stats.items() if k != "per_label"}
