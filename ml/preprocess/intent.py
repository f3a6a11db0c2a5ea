"""Utterances -> train/val/test Parquet and a label map.

The split of a text is decided by a hash of its normalised form (``method: hash``): the same
text always lands in the same split, so the test set stays stable as data grows and a text can
never be in train and test at once. Static data sets without an official split use a
per-label (stratified) split instead, still ordered by the same hash so it is reproducible.
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

from ml.core.config.preprocess import IntentPreprocessConfig
from ml.core.schemas import INTENT_FIRST_SEEN, INTENT_PROCESSED_COLUMNS, UTTERANCE_COLUMNS
from ml.preprocess.io import read_validated

_SPACES = re.compile(r"\s+")
SPLITS = ("train", "val", "test")


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


def assign_splits(df: pd.DataFrame, cfg: IntentPreprocessConfig) -> pd.Series:
    """The split of each row ("train", "val" or "test")."""
    split = cfg.split
    u = np.array([unit_hash(k, split.salt) for k in df["key"]])
    if split.method == "hash":
        out = np.where(
            u < split.test_fraction,
            "test",
            np.where(u < split.test_fraction + split.val_fraction, "val", "train"),
        )
        return pd.Series(out, index=df.index)
    result = pd.Series("train", index=df.index)
    order = pd.Series(u, index=df.index)
    for _, group in df.groupby("label", sort=True):
        ranked = order.loc[group.index].sort_values().index
        n = len(ranked)
        # Labels with >= 3 texts get at least one test and one val text.
        n_test = max(1, math.floor(n * split.test_fraction)) if n >= 3 else 0
        n_val = max(1, math.floor(n * split.val_fraction)) if n >= 3 else 0
        result.loc[ranked[:n_test]] = "test"
        result.loc[ranked[n_test : n_test + n_val]] = "val"
    return result


def preprocess_intent(
    validated_root: Path, out_dir: Path, cfg: IntentPreprocessConfig
) -> dict[str, Any]:
    """Validated utterance partitions -> ``out_dir/{train,val,test}.parquet`` + label_map.json."""
    raw = read_validated(validated_root, "utterances", UTTERANCE_COLUMNS)
    df = pd.DataFrame(
        {
            "text": [normalise_text(t, cfg.lowercase) for t in raw["text"]],
            "label": raw["intent"].str.strip(),
            INTENT_FIRST_SEEN: raw["partition"],
        }
    )
    df = df[df["text"] != ""].reset_index(drop=True)
    df["key"] = [text_key(t) for t in df["text"]]
    df, dedup_stats = deduplicate(df)
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
        "split_method": cfg.split.method,
        "split_sizes": {name: sum(c.values()) for name, c in counts.items()},
        "labels": len(labels),
        "per_label": counts,
    }
    (out_dir / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    return {k: v for k, v in stats.items() if k != "per_label"}
