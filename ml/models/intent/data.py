"""Reading the processed intent splits and batching them with as little padding as possible."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ml.core.errors import InputError
from ml.core.schemas import INTENT_PROCESSED_COLUMNS

if TYPE_CHECKING:
    import torch

SPLITS = ("train", "val", "test")


def split_path(processed_dir: str | Path, split: str) -> Path:
    return Path(processed_dir) / "intent" / f"{split}.parquet"


def label_map_path(processed_dir: str | Path) -> Path:
    return Path(processed_dir) / "intent" / "label_map.json"


def load_split_policy(processed_dir: str | Path) -> str | None:
    """How the processed splits were made (``split_policy`` in preprocessing's stats.json, e.g.
    official test + stratified train/val); None when not recorded (older or hand-made data)."""
    path = Path(processed_dir) / "intent" / "stats.json"
    try:
        policy = json.loads(path.read_text(encoding="utf-8")).get("split_policy")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None
    return str(policy) if policy is not None else None


def load_labels(processed_dir: str | Path) -> list[str]:
    """The class names; list index = class id."""
    path = label_map_path(processed_dir)
    if not path.is_file():
        raise InputError(f"{path} is missing (run `python -m ml preprocess` first)")
    try:
        labels = json.loads(path.read_text(encoding="utf-8"))["labels"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(f'{path}: expected {{"labels": [...]}}: {exc}') from exc
    if not labels or len(set(labels)) != len(labels):
        raise InputError(f"{path}: labels must be a non-empty list without duplicates")
    return [str(label) for label in labels]


def load_split(processed_dir: str | Path, split: str, labels: Sequence[str]) -> pd.DataFrame:
    """One split with an added integer ``y`` column; fails naming the file and the problem."""
    path = split_path(processed_dir, split)
    if not path.is_file():
        raise InputError(f"{path} is missing (run `python -m ml preprocess` first)")
    df = pd.read_parquet(path)
    missing = [c for c in INTENT_PROCESSED_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}")
    if df.empty:
        raise InputError(f"{path}: no rows")
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted(set(df["label"].astype(str)) - set(index))
    if unknown:
        raise InputError(f"{path}: column label has values not in label_map.json: {unknown[:10]}")
    df = df.reset_index(drop=True).copy()
    df["text"] = df["text"].astype(str)
    df["y"] = df["label"].astype(str).map(index).astype(np.int64)
    return df


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, *, group_batches: int, seed: int
) -> list[list[int]]:
    """Shuffle, then sort windows of ``batch_size * group_batches`` examples by length and cut
    them into batches: examples of similar length share a batch (little padding) while the
    order stays random across windows and batches. Deterministic for a given seed."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    window = batch_size * group_batches
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = order[start : start + window]
        chunk = chunk[np.argsort([lengths[i] for i in chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size].tolist() for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)  # type: ignore[arg-type]
    return batches


def sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Inference batching: fully length-sorted (order does not matter, padding is minimal)."""
    order = np.argsort(lengths, kind="stable")
    return [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]


def pad_ids(token_ids: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad to the longest sequence of this batch only (dynamic padding): int64 input_ids and
    attention_mask arrays (what torch and ONNX Runtime both take)."""
    width = max(len(ids) for ids in token_ids)
    input_ids = np.full((len(token_ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(token_ids), width), dtype=np.int64)
    for row, ids in enumerate(token_ids):
        input_ids[row, : len(ids)] = ids
        mask[row, : len(ids)] = 1
    return input_ids, mask


def pad_batch(token_ids: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`pad_ids` as torch tensors."""
    import torch

    input_ids, mask = pad_ids(token_ids, pad_id)
    return torch.from_numpy(input_ids), torch.from_numpy(mask)


def padding_stats(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> dict[str, Any]:
    """Real vs padded token counts for a batching, to show what length-grouping saves."""
    real = int(sum(lengths))
    padded = int(sum(max(lengths[i] for i in b) * len(b) for b in batches if b))
    return {"real_tokens": real, "padded_tokens": padded, "pad_fraction": 1 - real / max(padded, 1)}


def tokenize(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids per text, truncated, unpadded (padding happens per batch)."""
    return list(tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"])


def steps_per_epoch(n_batches: int, grad_accum_steps: int) -> int:
    return math.ceil(n_batches / grad_accum_steps)
