"""Reading the processed recsys files (layout in ml/core/schemas.py) into one typed bundle."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ml.core.errors import InputError
from ml.core.schemas import ITEM_PROCESSED_COLUMNS

_REQUIRED = {
    "items.parquet": ITEM_PROCESSED_COLUMNS,
    "users.parquet": ("user_idx", "user_id"),
    "train.parquet": ("user_idx", "items"),
    "val.parquet": ("user_idx", "history", "target"),
    "test.parquet": ("user_idx", "history", "target"),
}


@dataclass
class RecData:
    """The catalog, the users and the leave-last-out splits, all in item_idx space."""

    items: pd.DataFrame
    users: pd.DataFrame
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame

    @property
    def n_items(self) -> int:
        return len(self.items)

    def train_counts(self) -> np.ndarray:
        """How often each item occurs in the training sequences (its popularity)."""
        parts = [np.asarray(s, dtype=np.int64) for s in self.train["items"]]
        flat = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        return np.bincount(flat, minlength=self.n_items).astype(np.float64)

    def split(self, name: str) -> pd.DataFrame:
        if name not in ("val", "test"):
            raise InputError(f"unknown split {name!r}: use val or test")
        return self.val if name == "val" else self.test


def recsys_dir(processed_dir: str | Path) -> Path:
    """Accept either ``<processed>`` or ``<processed>/recsys``."""
    path = Path(processed_dir)
    return path / "recsys" if (path / "recsys" / "items.parquet").exists() else path


def load_recsys(processed_dir: str | Path) -> RecData:
    """Load and check the five files; a missing file or column is an InputError naming it."""
    folder = recsys_dir(processed_dir)
    frames: dict[str, pd.DataFrame] = {}
    for name, columns in _REQUIRED.items():
        path = folder / name
        if not path.is_file():
            raise InputError(f"{path}: missing (run `python -m ml preprocess` or import-recbole)")
        frame = pd.read_parquet(path)
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise InputError(f"{path}: missing column(s) {missing}")
        frames[name.split(".")[0]] = frame
    items = frames["items"]
    if not np.array_equal(items["item_idx"].to_numpy(), np.arange(len(items))):
        raise InputError(f"{folder / 'items.parquet'}: item_idx must equal the row number")
    n = len(items)
    for name in ("train", "val", "test"):
        col = "items" if name == "train" else "history"
        seqs = frames[name][col]
        flat = [int(i) for s in seqs for i in s]
        if name != "train":
            flat += [int(t) for t in frames[name]["target"]]
        if flat and (min(flat) < 0 or max(flat) >= n):
            raise InputError(f"{folder / (name + '.parquet')}: item index outside 0..{n - 1}")
    return RecData(
        items=items,
        users=frames["users"],
        train=frames["train"],
        val=frames["val"],
        test=frames["test"],
    )


def training_pairs(
    sequences: list[list[int]] | pd.Series, max_history: int
) -> tuple[list[list[int]], np.ndarray]:
    """Every next-item step of every sequence: (last ``max_history`` items before t, item t)."""
    histories: list[list[int]] = []
    targets: list[int] = []
    for seq in sequences:
        seq = [int(i) for i in seq]
        for t in range(1, len(seq)):
            histories.append(seq[max(0, t - max_history) : t])
            targets.append(seq[t])
    return histories, np.asarray(targets, dtype=np.int64)
