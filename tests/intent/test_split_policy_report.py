"""Evaluation says which test set it scored: the split policy preprocessing recorded."""

from __future__ import annotations

import json
from pathlib import Path

from ml.models.intent.data import load_split_policy


def test_split_policy_is_read_from_processed_stats(tmp_path: Path) -> None:
    stats = tmp_path / "intent" / "stats.json"
    stats.parent.mkdir()
    policy = "official test (1076 rows) + stratified train/val from the rest (9957 rows)"
    stats.write_text(json.dumps({"split_policy": policy, "split_method": "stratified"}))
    assert load_split_policy(tmp_path) == policy


def test_split_policy_is_none_when_not_recorded(tmp_path: Path) -> None:
    assert load_split_policy(tmp_path) is None  # no stats.json
    stats = tmp_path / "intent" / "stats.json"
    stats.parent.mkdir()
    stats.write_text(json.dumps({"split_method": "hash"}))  # written before split_policy
    assert load_split_policy(tmp_path) is None
    stats.write_text("[1, 2]")  # not a mapping
    assert load_split_policy(tmp_path) is None
