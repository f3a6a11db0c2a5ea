"""A small synthetic shop with structure, written in the processed recsys layout.

Items live in categories; each item has a "bundle partner" in its category. Users prefer one or
two categories and buy mostly within them, sometimes the partner of what they just bought, and
item popularity is skewed inside a category. Some items are held back from training: they
only appear as test targets (rate ``cold_rate`` when the user's category has one), to exercise
the cold-start path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

NOUNS = ["lamp", "kettle", "drill", "sock", "novel", "guitar", "tent", "serum", "mouse", "chair"]
ADJECTIVES = ["red", "steel", "cozy", "smart", "compact", "deluxe", "eco", "vintage"]


def write_world(
    folder: Path,
    *,
    n_categories: int = 6,
    items_per_category: int = 20,
    n_users: int = 600,
    min_len: int = 6,
    max_len: int = 12,
    bundle_rate: float = 0.1,
    n_cold: int = 6,
    cold_rate: float = 0.3,
    seed: int = 0,
) -> Path:
    rng = np.random.default_rng(seed)
    n_items = n_categories * items_per_category
    cats = np.repeat(np.arange(n_categories), items_per_category)
    items = pd.DataFrame(
        {
            "item_idx": np.arange(n_items),
            "item_id": [f"I{i:05d}" for i in range(n_items)],
            "title": [
                f"{ADJECTIVES[i % len(ADJECTIVES)]} {NOUNS[c % len(NOUNS)]} model {i}"
                for i, c in enumerate(cats)
            ],
            "category": [f"{NOUNS[c % len(NOUNS)]}s" for c in cats],
            "brand": [f"brand{i % 5}" for i in range(n_items)],
            "price": rng.uniform(5, 100, n_items).round(2),
            "description": [f"A {NOUNS[c % len(NOUNS)]} for everyday use." for c in cats],
        }
    )
    items["text"] = items["title"] + ". " + items["category"] + ". " + items["brand"]
    partner = np.arange(n_items) ^ 1  # pairs (0,1), (2,3), ... inside one category
    weights = 1.0 / np.arange(1, items_per_category + 1) ** 0.8  # skew within a category
    cold = rng.choice(n_items, n_cold, replace=False)
    warm_mask = np.ones(n_items, bool)
    warm_mask[cold] = False

    def draw(cat: int) -> int:
        members = np.arange(cat * items_per_category, (cat + 1) * items_per_category)
        w = weights * warm_mask[members]
        return int(rng.choice(members, p=w / w.sum()))

    rows_train, rows_val, rows_test = [], [], []
    for u in range(n_users):
        favs = rng.choice(n_categories, rng.integers(1, 3), replace=False)
        length = int(rng.integers(min_len, max_len + 1))
        seq: list[int] = []
        for t in range(length):
            last = t == length - 1
            cat = int(rng.choice(favs))
            cold_here = [c for c in cold if cats[c] == cat]
            if last and cold_here and rng.random() < cold_rate:
                item = int(rng.choice(cold_here))  # a new item in a category the user likes
            elif seq and rng.random() < bundle_rate and warm_mask[partner[seq[-1]]]:
                item = int(partner[seq[-1]])
            else:
                item = draw(cat)
            seq.append(item)
        rows_train.append({"user_idx": u, "items": seq[:-2]})
        rows_val.append({"user_idx": u, "history": seq[:-2], "target": seq[-2]})
        rows_test.append({"user_idx": u, "history": seq[:-1], "target": seq[-1]})
    out = folder / "recsys"
    out.mkdir(parents=True, exist_ok=True)
    items.to_parquet(out / "items.parquet", index=False)
    pd.DataFrame(
        {"user_idx": np.arange(n_users), "user_id": [f"U{u}" for u in range(n_users)]}
    ).to_parquet(out / "users.parquet", index=False)
    pd.DataFrame(rows_train).to_parquet(out / "train.parquet", index=False)
    pd.DataFrame(rows_val).to_parquet(out / "val.parquet", index=False)
    pd.DataFrame(rows_test).to_parquet(out / "test.parquet", index=False)
    return folder
