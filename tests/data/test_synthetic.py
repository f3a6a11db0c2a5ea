"""The synthetic shop generator: determinism, layout, and the structure the models rely on."""

from __future__ import annotations

import csv
import itertools
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.core.config.data import DriftConfig, GeneratorConfig
from ml.data.intent_templates import CONFUSABLE, DRIFT_TEMPLATES, TEMPLATES
from ml.data.synthetic import day_date, generate_world, partition_path
from ml.data.utterances import add_typos, generate_utterances, intent_counts
from ml.data.world import build_world, catalog_until
from ml.core.schemas import (
    CATALOG_COLUMNS,
    DATASETS,
    EVENT_COLUMNS,
    EVENT_TYPES,
    OUT_OF_SCOPE,
    SHOP_INTENTS,
    UTTERANCE_COLUMNS,
)

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def small_config(**overrides: object) -> GeneratorConfig:
    base: dict[str, object] = {
        "seed": 3,
        "days": 3,
        "n_items": 300,
        "n_categories": 12,
        "n_users": 300,
        "utterances_per_day": 240,
    }
    base.update(overrides)
    return GeneratorConfig.model_validate(base)


def read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.csv"))}


def load_dataset(root: Path, dataset: str) -> pd.DataFrame:
    return pd.concat([read(p) for p in sorted((root / dataset).glob("date=*/part-000.csv"))])


@pytest.fixture(scope="module")
def drift_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[GeneratorConfig, Path, dict]:
    """A small three-day run with new items and drift from day 1."""
    cfg = small_config(drift=DriftConfig(strength=0.8, start_day=1, new_items=7, new_phrasing=True))
    out = tmp_path_factory.mktemp("drift-run")
    return cfg, out, generate_world(cfg, out)


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[GeneratorConfig, Path]:
    """Default sizes (params.yaml), three days: the data the pipeline sees out of the box."""
    cfg = GeneratorConfig()
    out = tmp_path_factory.mktemp("default-run")
    generate_world(cfg, out)
    return cfg, out


# --- determinism -------------------------------------------------------------------------------


def test_same_seed_same_bytes_and_other_seed_differs(
    drift_run: tuple[GeneratorConfig, Path, dict], tmp_path: Path
) -> None:
    cfg, out, _ = drift_run
    again = tmp_path / "again"
    generate_world(cfg, again)
    assert all_files(again) == all_files(out)

    other = tmp_path / "other"
    generate_world(cfg.model_copy(update={"seed": cfg.seed + 1}), other)
    theirs, ours = all_files(other), all_files(out)
    assert theirs.keys() == ours.keys()
    for name in ours:
        if "catalog" in name and "2026-11-01" not in name:
            continue  # later catalog days hold only new items; compared below anyway
        assert theirs[name] != ours[name], f"{name} identical for different seeds"


def test_day_alone_equals_day_of_full_run(
    drift_run: tuple[GeneratorConfig, Path, dict], tmp_path: Path
) -> None:
    cfg, out, _ = drift_run
    meta = generate_world(cfg, tmp_path, first_day=2, n_days=1)
    assert meta["dates"] == ["2026-11-03"]
    assert len(meta["paths"]) == len(DATASETS)
    for dataset in DATASETS:
        alone = partition_path(tmp_path, dataset, "2026-11-03").read_bytes()
        assert alone == partition_path(out, dataset, "2026-11-03").read_bytes(), dataset
    # Nothing else was written.
    assert sorted(p.parent.name for p in tmp_path.rglob("*.csv")) == ["date=2026-11-03"] * 3


def test_output_does_not_depend_on_python_hash_seed(tmp_path: Path, repo_root: Path) -> None:
    """Set/dict ordering must never leak into the files (another process, another hash seed)."""
    import os
    import subprocess

    cfg = small_config(days=1, drift=DriftConfig(strength=0.5, start_day=0, new_items=3))
    generate_world(cfg, tmp_path / "here")
    script = (
        "import sys; from pathlib import Path; from ml.core.config.data import GeneratorConfig;"
        "from ml.data.synthetic import generate_world;"
        "generate_world(GeneratorConfig.model_validate_json(sys.argv[1]), Path(sys.argv[2]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run(
        [sys.executable, "-c", script, cfg.model_dump_json(), str(tmp_path / "there")],
        check=True,
        cwd=repo_root,
        env=env,
        capture_output=True,
    )
    assert all_files(tmp_path / "there") == all_files(tmp_path / "here")


# --- layout and contract -----------------------------------------------------------------------


def test_partitions_follow_the_schema(drift_run: tuple[GeneratorConfig, Path, dict]) -> None:
    cfg, out, meta = drift_run
    dates = [day_date(cfg, d) for d in range(cfg.days)]
    assert meta["dates"] == dates
    columns = {"catalog": CATALOG_COLUMNS, "events": EVENT_COLUMNS, "utterances": UTTERANCE_COLUMNS}
    for dataset, cols in columns.items():
        for date in dates:
            path = out / dataset / f"date={date}" / "part-000.csv"
            with path.open(encoding="utf-8", newline="") as fh:
                header = next(csv.reader(fh))
            assert tuple(header) == cols, path
            assert meta["rows"][dataset][date] == len(read(path))
    catalog = load_dataset(out, "catalog")
    assert catalog.item_id.is_unique and catalog.item_id.str.fullmatch(r"I\d{5}").all()
    day0 = read(partition_path(out, "catalog", dates[0]))
    assert len(day0) == cfg.n_items and (day0.first_seen == dates[0]).all()
    assert set(day0.category) == set(build_world(cfg).categories)
    assert (day0.price.astype(float) > 0).all()
    for date in dates[1:]:
        later = read(partition_path(out, "catalog", date))
        assert len(later) == cfg.drift.new_items and (later.first_seen == date).all()

    events = load_dataset(out, "events")
    assert events.event_id.is_unique
    assert set(events.event_type) == set(EVENT_TYPES)
    assert events.user_id.str.fullmatch(r"U\d{5}").all()
    assert events.timestamp.str.match(TIMESTAMP).all()
    # Events only use items the catalog has announced by that day.
    first_seen = dict(zip(catalog.item_id, catalog.first_seen, strict=True))
    assert (events.item_id.map(first_seen) <= events.timestamp.str[:10]).all()
    for date in dates:
        day_events = read(partition_path(out, "events", date))
        assert (day_events.timestamp.str[:10] == date).all()
        assert day_events.timestamp.is_monotonic_increasing

    utterances = load_dataset(out, "utterances")
    assert utterances.utterance_id.is_unique
    assert utterances.timestamp.str.match(TIMESTAMP).all()
    assert (utterances.text.str.len() > 0).all()


def test_empty_catalog_day_still_has_a_header(tmp_path: Path) -> None:
    cfg = small_config(days=2)
    generate_world(cfg, tmp_path)
    path = partition_path(tmp_path, "catalog", day_date(cfg, 1))
    assert path.read_text(encoding="utf-8") == ",".join(CATALOG_COLUMNS) + "\n"


def test_sessions_view_before_cart_before_purchase(
    drift_run: tuple[GeneratorConfig, Path, dict],
) -> None:
    _, out, _ = drift_run
    events = load_dataset(out, "events")
    rank = {"view": 0, "add_to_cart": 1, "purchase": 2}
    for (_, _), group in events.groupby(["session_id", "item_id"]):
        kinds = list(group.event_type)
        firsts = [kinds.index(k) for k in ("view", "add_to_cart", "purchase") if k in kinds]
        assert firsts == sorted(firsts)
        assert kinds[0] == "view"
        if "purchase" in kinds:
            assert "add_to_cart" in kinds
        assert all(rank[k] >= 0 for k in kinds)
    # A session belongs to one user.
    assert (events.groupby("session_id").user_id.nunique() == 1).all()


# --- the shape of the shop ---------------------------------------------------------------------


def gini(counts: np.ndarray) -> float:
    x = np.sort(counts.astype(float))
    n = len(x)
    return float((2 * np.arange(1, n + 1) - n - 1) @ x / (n * x.sum()))


def test_popularity_has_a_long_tail(default_run: tuple[GeneratorConfig, Path]) -> None:
    cfg, out = default_run
    events = load_dataset(out, "events")
    counts = events.item_id.value_counts().reindex(
        [f"I{i + 1:05d}" for i in range(cfg.n_items)], fill_value=0
    )
    top_share = counts.sort_values(ascending=False).iloc[: cfg.n_items // 10].sum() / counts.sum()
    assert top_share > 0.5
    assert gini(counts.to_numpy()) > 0.6


def test_defaults_give_users_enough_history(default_run: tuple[GeneratorConfig, Path]) -> None:
    cfg, out = default_run
    events = load_dataset(out, "events")
    kept = events[events.event_type.isin(["add_to_cart", "purchase"])]
    distinct = kept.groupby("user_id").item_id.nunique()
    # The recommender's leave-last-out split needs >= 3 items per user.
    assert (distinct >= 3).sum() >= 0.3 * cfg.n_users


def test_sequences_beat_most_popular(default_run: tuple[GeneratorConfig, Path]) -> None:
    """Leave-last-out: the popular items of the category of a user's previous item hit the
    held-out last item far more often than the globally most popular items, so there is
    sequential structure for a model to learn."""
    _, out = default_run
    events = load_dataset(out, "events").sort_values(["timestamp", "event_id"])
    category = load_dataset(out, "catalog").set_index("item_id").category
    kept = events[events.event_type.isin(["add_to_cart", "purchase"])]
    sequences = kept.groupby("user_id").item_id.apply(lambda s: list(dict.fromkeys(s)))
    sequences = sequences[sequences.map(len) >= 3]
    held_out = kept.user_id.map(sequences.map(lambda seq: seq[-1]))
    popular = kept[held_out != kept.item_id].item_id.value_counts()
    top_global = set(popular.index[:10])
    top_by_category = {
        cat: set(group.index[:10])
        for cat, group in popular.groupby(category.reindex(popular.index).to_numpy())
    }
    hits_popular = sum(seq[-1] in top_global for seq in sequences)
    hits_history = sum(seq[-1] in top_by_category[category[seq[-2]]] for seq in sequences)
    assert len(sequences) > 300
    assert hits_history > 2 * hits_popular, (hits_history, hits_popular, len(sequences))


def test_bundles_are_bought_together(default_run: tuple[GeneratorConfig, Path]) -> None:
    cfg, out = default_run
    world = build_world(cfg)
    bundle_pairs = {
        frozenset((world.items[a].item_id, world.items[b].item_id))
        for bundle in world.bundles
        for a, b in itertools.combinations(bundle, 2)
    }
    events = load_dataset(out, "events")
    carts = events[events.event_type == "add_to_cart"].groupby("session_id").item_id.apply(set)
    pair_counts: Counter[frozenset[str]] = Counter()
    for basket in carts:
        pair_counts.update(frozenset(p) for p in itertools.combinations(sorted(basket), 2))
    item_freq = Counter(i for basket in carts for i in basket)

    def lift(pair: frozenset[str], count: int) -> float:
        a, b = tuple(pair)
        return count * len(carts) / (item_freq[a] * item_freq[b])

    bundle_lifts = [lift(p, c) for p, c in pair_counts.items() if p in bundle_pairs]
    other_lifts = [lift(p, c) for p, c in pair_counts.items() if p not in bundle_pairs]
    assert len(bundle_lifts) >= 50
    # Far above chance (lift 1), and far above pairs that merely share a category.
    assert np.median(bundle_lifts) > 3 * np.median(other_lifts)
    # The pairs most often carted together are mostly bundles.
    top = [pair for pair, _ in pair_counts.most_common(30)]
    assert sum(pair in bundle_pairs for pair in top) >= 20


def test_catalog_text_carries_category_signal(default_run: tuple[GeneratorConfig, Path]) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.neighbors import NearestCentroid

    cfg, out = default_run
    catalog = read(partition_path(out, "catalog", day_date(cfg, 0)))
    # Brands belong to a few categories, not everywhere.
    per_brand = catalog.groupby("brand").category.nunique()
    assert per_brand.max() <= 3 and per_brand.mean() < 2
    # Text without brand names still tells the category: category words are shared.
    text = (catalog.title + " " + catalog.description).str.replace(
        "|".join(sorted(set(catalog.brand), key=len, reverse=True)), "", regex=True
    )
    half = len(catalog) // 2
    vectors = TfidfVectorizer().fit(text[:half])
    model = NearestCentroid().fit(vectors.transform(text[:half]), catalog.category[:half])
    accuracy = (model.predict(vectors.transform(text[half:])) == catalog.category[half:]).mean()
    assert accuracy > 0.9


# --- utterances --------------------------------------------------------------------------------


def test_templates_cover_every_intent() -> None:
    for intent in (*SHOP_INTENTS, OUT_OF_SCOPE):
        assert len(set(TEMPLATES[intent])) >= 5, intent
        assert DRIFT_TEMPLATES[intent], intent
        assert not set(DRIFT_TEMPLATES[intent]) & set(TEMPLATES[intent])
    for intent, neighbours in CONFUSABLE.items():
        assert intent in SHOP_INTENTS and set(neighbours) <= set(SHOP_INTENTS)


def test_every_intent_every_day(drift_run: tuple[GeneratorConfig, Path, dict]) -> None:
    for day in range(5):
        counts = intent_counts(GeneratorConfig(), day)
        assert set(counts) == {*SHOP_INTENTS, OUT_OF_SCOPE}
        assert min(counts.values()) >= 3 and sum(counts.values()) == 1500
        # Imbalanced priors: the largest intent is several times the smallest shop intent.
        shop = [counts[i] for i in SHOP_INTENTS]
        assert max(shop) >= 3 * min(shop)
    cfg, out, _ = drift_run
    for date in (day_date(cfg, d) for d in range(cfg.days)):
        labels = read(partition_path(out, "utterances", date)).intent.value_counts()
        assert set(labels.index) == {*SHOP_INTENTS, OUT_OF_SCOPE}, date
        assert labels.sum() == cfg.utterances_per_day


def test_slots_are_filled_from_the_catalog() -> None:
    cfg = small_config(typo_rate=0.0, casing_noise_rate=0.0, label_noise_rate=0.0)
    world = build_world(cfg)
    items, _ = catalog_until(world, cfg, 1)
    titles = {it.title for it in items}
    brands = {it.brand for it in items}
    categories = {c.lower() for c in world.categories}
    nouns = {it.noun for it in items}
    utterances = generate_utterances(world, cfg, 1)
    questions = [u for u in utterances if u.intent == "product_question"]
    assert questions
    for u in questions:
        assert u.slots, u.template
        for name, value in u.slots.items():
            assert value.lower() in u.text.lower(), (name, value, u.text)
        if "product" in u.slots:
            brand, _, rest = u.slots["product"].partition(" ")
            assert u.slots["product"] in titles or (brand in brands and rest in nouns)
        if "brand" in u.slots:
            assert u.slots["brand"] in brands
        if "category" in u.slots:
            assert u.slots["category"] in categories
    # Other slots are drawn from the shop too: coupons from the world, orders look like orders.
    coupons = {u.slots["coupon"] for u in utterances if "coupon" in u.slots}
    assert coupons and coupons <= set(world.coupons)
    orders = [u.slots["order"] for u in utterances if "order" in u.slots]
    assert orders and all(re.fullmatch(r"#\d{7}|ORD-\d{5}", o) for o in orders)
    assert all(u.intent == u.true_intent for u in utterances)


def test_label_noise_flips_to_confusable_intents() -> None:
    cfg = small_config(label_noise_rate=0.3, utterances_per_day=600)
    utterances = generate_utterances(build_world(cfg), cfg, 0)
    flipped = [u for u in utterances if u.intent != u.true_intent]
    assert 0.15 * len(utterances) < len(flipped) < 0.4 * len(utterances)
    assert all(u.intent in CONFUSABLE[u.true_intent] for u in flipped)


def test_typos_and_casing_noise() -> None:
    rng = np.random.default_rng(0)
    text = "where is my order from yesterday"
    assert add_typos(rng, text, 0.0) == text
    noisy = add_typos(rng, text, 1.0)
    assert noisy != text and len(noisy.split()) == len(text.split())
    cfg = small_config(typo_rate=0.0, casing_noise_rate=1.0, utterances_per_day=300)
    texts = [u.text for u in generate_utterances(build_world(cfg), cfg, 0)]
    assert sum(t == t.lower() for t in texts) > 100
    assert sum(t == t.upper() for t in texts) > 20


# --- drift -------------------------------------------------------------------------------------


def category_shares(events: pd.DataFrame, category: pd.Series) -> pd.Series:
    return events.item_id.map(category).value_counts(normalize=True)


def test_drift_shifts_preferences_phrasing_and_items(
    drift_run: tuple[GeneratorConfig, Path, dict], tmp_path: Path
) -> None:
    cfg, out, _ = drift_run
    calm_cfg = cfg.model_copy(update={"drift": DriftConfig(strength=0.0, new_items=0)})
    generate_world(calm_cfg, tmp_path)
    category = load_dataset(out, "catalog").set_index("item_id").category
    dates = [day_date(cfg, d) for d in range(cfg.days)]

    def tv(root: Path, a: str, b: str) -> float:
        pa = category_shares(read(partition_path(root, "events", a)), category)
        pb = category_shares(read(partition_path(root, "events", b)), category)
        return float(pa.sub(pb, fill_value=0).abs().sum() / 2)

    assert tv(out, dates[0], dates[2]) > 2 * tv(tmp_path, dates[0], dates[2]) + 0.1
    # Day 0 is before drift.start_day: identical events with and without drift.
    assert (
        partition_path(out, "events", dates[0]).read_bytes()
        == partition_path(tmp_path, "events", dates[0]).read_bytes()
    )

    # New phrasings appear from start_day on, never before.
    world = build_world(cfg)
    before = generate_utterances(world, cfg, 0)
    after = generate_utterances(world, cfg, 2)
    assert not any(u.drifted for u in before)
    assert 0.2 < np.mean([u.drifted for u in after]) < 0.6
    # New items are launched, and shoppers notice them.
    events = load_dataset(out, "events")
    new_ids = set(load_dataset(out, "catalog").query("first_seen > @dates[0]").item_id)
    assert len(new_ids) == 2 * cfg.drift.new_items
    assert events.item_id.isin(new_ids).sum() > 0


def test_default_generation_is_fast(tmp_path: Path) -> None:
    import time

    start = time.perf_counter()
    generate_world(GeneratorConfig(), tmp_path, first_day=0, n_days=1)
    assert time.perf_counter() - start < 10  # the whole 3-day default run stays well under 20 s
