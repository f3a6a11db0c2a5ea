"""Length-grouped dynamic batching and split loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ml.core.errors import InputError
from ml.models.intent.data import (
    length_grouped_batches,
    load_labels,
    load_split,
    pad_batch,
    padding_stats,
)


def test_length_grouped_batches_pad_less_than_fixed_padding() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(4, 120, size=2000).tolist()
    batches = length_grouped_batches(lengths, 32, group_batches=20, seed=1)
    assert sorted(i for b in batches for i in b) == list(range(2000))
    grouped = padding_stats(lengths, batches)
    fixed_padded = 128 * len(lengths)  # what max_length=128 padding of every example costs
    random_batches = [list(range(i, min(i + 32, 2000))) for i in range(0, 2000, 32)]
    unsorted = padding_stats(lengths, random_batches)
    assert grouped["padded_tokens"] < 0.6 * fixed_padded
    assert grouped["padded_tokens"] < unsorted["padded_tokens"] * 0.75
    assert grouped["pad_fraction"] < 0.1


def test_length_grouped_batches_are_deterministic_and_shuffled() -> None:
    lengths = list(range(100)) * 3
    a = length_grouped_batches(lengths, 8, group_batches=4, seed=5)
    b = length_grouped_batches(lengths, 8, group_batches=4, seed=5)
    c = length_grouped_batches(lengths, 8, group_batches=4, seed=6)
    assert a == b
    assert a != c


def test_pad_batch_pads_to_longest_in_batch_only() -> None:
    ids, mask = pad_batch([[1, 2, 3], [4], [5, 6]], pad_id=0)
    assert ids.shape == (3, 3)
    assert ids.tolist() == [[1, 2, 3], [4, 0, 0], [5, 6, 0]]
    assert mask.sum().item() == 6


def test_load_split_reports_unknown_labels(tiny_processed: Path) -> None:
    labels = load_labels(tiny_processed)
    df = load_split(tiny_processed, "train", labels)
    assert df["y"].between(0, len(labels) - 1).all()
    with pytest.raises(InputError, match=r"not in label_map\.json"):
        load_split(tiny_processed, "train", labels[:2])
    with pytest.raises(InputError, match="missing"):
        load_split(tiny_processed / "nowhere", "train", labels)
