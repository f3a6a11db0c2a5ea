"""RecBole atomic files (the UniSRec Amazon downstream sets) -> the processed recsys contract.

Input folder (e.g. ../shared/data/amazon_scientific/), with a dataset name such as Scientific:
  <name>.{train,valid,test}.inter  user_id:token  item_id_list:token_seq  item_id:token
                                   (ids are row indexes into the *2index files)
  <name>.item2index / <name>.user2index   original id <TAB> index
  <name>.text                      item_id:token (ASIN)  text:token_seq
Splits are leave-one-out by time, so for each user: test = (full history, last item), valid =
(history without the last item, second-to-last item), train sequence = the valid history.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from ml.core.errors import InputError

log = logging.getLogger(__name__)

TOP_MARKERS = ("Industrial & Scientific",)


def _dataset_name(folder: Path) -> str:
    names = sorted(p.name[: -len(".test.inter")] for p in folder.glob("*.test.inter"))
    if len(names) != 1:
        raise InputError(f"{folder}: expected exactly one <name>.test.inter, found {names}")
    return names[0]


def _read_index(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise InputError(f"{path}: missing")
    frame = pd.read_csv(
        path, sep="\t", header=None, names=["key", "idx"], dtype={"key": str}, keep_default_na=False
    )
    if not np.array_equal(np.sort(frame["idx"].to_numpy()), np.arange(len(frame))):
        raise InputError(f"{path}: indexes are not 0..{len(frame) - 1}")
    return frame.sort_values("idx").reset_index(drop=True)


def _read_inter(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise InputError(f"{path}: missing")
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    cols = {c.split(":")[0]: c for c in frame.columns}
    for needed in ("user_id", "item_id_list", "item_id"):
        if needed not in cols:
            raise InputError(f"{path}: no column {needed}:... (have {list(frame.columns)})")
    return pd.DataFrame(
        {
            "user_idx": frame[cols["user_id"]].astype(int),
            "history": frame[cols["item_id_list"]].map(lambda s: [int(x) for x in s.split()]),
            "target": frame[cols["item_id"]].astype(int),
        }
    )


def split_text(text: str) -> tuple[str, str, str]:
    """(title, category path, brand) from "Title. <top marker> path. Brand. " (best effort)."""
    text = text.strip()
    for marker in TOP_MARKERS:
        pos = text.find(f". {marker}")
        if pos >= 0:
            title = text[:pos]
            rest = text[pos + 2 + len(marker) :].strip()
            path, _, brand = rest.rstrip(".").rpartition(". ")
            if not path:  # no brand part
                path, brand = rest.rstrip("."), ""
            return title.strip(), path.strip(), brand.strip()
    return text.rstrip(". "), "", ""


def top_categories(paths: list[str]) -> list[str]:
    """Top-level category of each space-joined category path: extend the first word while every
    path sharing the prefix continues with the same next word (a trie's first branch point),
    using at least two words when the first word alone already branches."""
    words = [p.split() for p in paths]
    prefix_counts = Counter(tuple(w[:n]) for w in words for n in range(1, len(w) + 1))
    out = []
    for w in words:
        if not w:
            out.append("unknown")
            continue
        n = 1
        while n < len(w) and prefix_counts[tuple(w[: n + 1])] == prefix_counts[tuple(w[:n])]:
            n += 1
        if n == 1 and len(w) > 1:
            n = 2
        out.append(" ".join(w[:n]))
    return out


def import_recbole(folder: str | Path, out_dir: str | Path) -> dict:
    """Write items/users/train/val/test Parquet files under ``out_dir/recsys``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    name = _dataset_name(folder)
    items_idx = _read_index(folder / f"{name}.item2index")
    users_idx = _read_index(folder / f"{name}.user2index")
    text_path = folder / f"{name}.text"
    if not text_path.is_file():
        raise InputError(f"{text_path}: missing")
    texts = pd.read_csv(
        text_path, sep="\t", dtype=str, keep_default_na=False, quoting=3
    )  # QUOTE_NONE: titles contain quotes
    texts.columns = [c.split(":")[0] for c in texts.columns]
    text_of = dict(zip(texts["item_id"], texts["text"], strict=True))
    missing = [k for k in items_idx["key"] if k not in text_of]
    if missing:
        log.warning("%d items have no text in %s (e.g. %s)", len(missing), text_path, missing[:3])
    raw = [text_of.get(k, "") for k in items_idx["key"]]
    parts = [split_text(t) for t in raw]
    items = pd.DataFrame(
        {
            "item_idx": np.arange(len(items_idx)),
            "item_id": items_idx["key"],
            "title": [p[0] for p in parts],
            "category": top_categories([p[1] for p in parts]),
            "brand": [p[2] for p in parts],
            "price": np.full(len(items_idx), np.nan),
            "description": [p[1] for p in parts],  # the category path is the only other text
            "text": [t.strip() for t in raw],
        }
    )
    valid = _read_inter(folder / f"{name}.valid.inter").set_index("user_idx").sort_index()
    test = _read_inter(folder / f"{name}.test.inter").set_index("user_idx").sort_index()
    n_items = len(items)
    for label, frame in (("valid", valid), ("test", test)):
        flat = [i for h in frame["history"] for i in h] + frame["target"].tolist()
        if flat and max(flat) >= n_items:
            raise InputError(f"{folder / f'{name}.{label}.inter'}: item index >= {n_items}")
    train = pd.DataFrame({"user_idx": valid.index.to_numpy(), "items": valid["history"].tolist()})
    consistent = sum(
        list(test.at[u, "history"]) == [*valid.at[u, "history"], valid.at[u, "target"]]
        for u in valid.index
        if u in test.index
    )
    recsys = Path(out_dir) / "recsys"
    recsys.mkdir(parents=True, exist_ok=True)
    items.to_parquet(recsys / "items.parquet", index=False)
    pd.DataFrame({"user_idx": users_idx["idx"], "user_id": users_idx["key"]}).to_parquet(
        recsys / "users.parquet", index=False
    )
    train.to_parquet(recsys / "train.parquet", index=False)
    valid.reset_index().to_parquet(recsys / "val.parquet", index=False)
    test.reset_index().to_parquet(recsys / "test.parquet", index=False)
    return {
        "dataset": name,
        "out": str(recsys),
        "items": n_items,
        "users": len(users_idx),
        "train_interactions": int(sum(map(len, train["items"]))),
        "val_users": len(valid),
        "test_users": len(test),
        "test_history_equals_valid_plus_target": int(consistent),
        "categories": int(items["category"].nunique()),
    }
