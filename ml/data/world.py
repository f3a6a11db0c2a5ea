"""The synthetic shop's world: catalog, brands, bundles and users with latent tastes.

Everything here is a pure function of the generator config (seed and sizes), never of a day,
so any single day can be regenerated later with exactly the same world.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ml.core.config.data import GeneratorConfig
from ml.data.catalog_vocab import (
    BRAND_CODAS,
    BRAND_MIDDLES,
    BRAND_ONSETS,
    CATEGORY_QUALIFIERS,
    CATEGORY_SPECS,
    DESCRIPTION_TEMPLATES,
    MODEL_SUFFIXES,
    CategorySpec,
)
from ml.data.intent_templates import COUPON_WORDS

# Independent random streams: one per purpose, so adding a draw to one never shifts another.
STREAM_WORLD = 1
STREAM_NEW_ITEMS = 2
STREAM_EVENTS = 3
STREAM_UTTERANCES = 4
STREAM_DRIFT = 5
STREAM_PII = 6


def make_rng(seed: int, stream: int, day: int = 0) -> np.random.Generator:
    """A generator seeded from (seed, stream, day): reproducible per day on its own."""
    return np.random.default_rng(np.random.SeedSequence([seed, stream, day]))


@dataclass(frozen=True)
class Item:
    item_id: str
    title: str
    category: int
    brand: str
    noun: str
    price: float
    description: str
    first_day: int


@dataclass
class World:
    categories: list[str]
    specs: list[CategorySpec]
    brands_by_category: list[list[str]]
    items: list[Item]
    # Zipf-like popularity weight of each item (index = position in ``items``).
    popularity: np.ndarray
    # Tuples of item indices bought together; the first is the anchor.
    bundles: list[tuple[int, ...]]
    # Users: category preference rows (n_users x n_categories), favourite brands, activity.
    user_ids: list[str]
    category_pref: np.ndarray
    favourite_brands: list[frozenset[str]]
    activity: np.ndarray
    # Category preferences after the drift shift (the same users' tastes moved on).
    shifted_category_pref: np.ndarray
    coupons: list[str] = field(default_factory=list)


def category_specs(n_categories: int) -> list[CategorySpec]:
    """The first ``n_categories`` specs; beyond the hand-written ones, qualified copies."""
    specs = list(CATEGORY_SPECS[:n_categories])
    i = 0
    while len(specs) < n_categories:
        base = CATEGORY_SPECS[i % len(CATEGORY_SPECS)]
        qualifier = CATEGORY_QUALIFIERS[(i // len(CATEGORY_SPECS)) % len(CATEGORY_QUALIFIERS)]
        round_no = i // (len(CATEGORY_SPECS) * len(CATEGORY_QUALIFIERS))
        suffix = f" {round_no + 1}" if round_no else ""
        specs.append(
            CategorySpec(
                name=f"{qualifier} {base.name}{suffix}",
                nouns=tuple(f"{qualifier.lower()} {n}" for n in base.nouns),
                adjectives=base.adjectives,
                materials=base.materials,
                features=base.features,
                price_range=base.price_range,
                complements=base.complements,
            )
        )
        i += 1
    return specs


def _brand_names(rng: np.random.Generator, n: int) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        name = (
            BRAND_ONSETS[rng.integers(len(BRAND_ONSETS))]
            + BRAND_MIDDLES[rng.integers(len(BRAND_MIDDLES))]
            + BRAND_CODAS[rng.integers(len(BRAND_CODAS))]
        )
        if name in seen:
            # The syllable space is finite: number the brand rather than loop forever.
            name = f"{name}{len(names)}"
        seen.add(name)
        names.append(name)
    return names


def _assign_brands(
    rng: np.random.Generator, specs: list[CategorySpec], per_category: int = 6
) -> list[list[str]]:
    """Each brand has a home category; some also sell in a complement category."""
    n_cat = len(specs)
    names = _brand_names(rng, n_cat * per_category)
    index = {spec.name: i for i, spec in enumerate(specs)}
    by_category: list[list[str]] = [[] for _ in range(n_cat)]
    for b, name in enumerate(names):
        home = b % n_cat
        by_category[home].append(name)
        partners = [index[c] for c in specs[home].complements if c in index]
        if partners and rng.random() < 0.5:
            by_category[int(rng.choice(partners))].append(name)
    return by_category


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def make_item(
    rng: np.random.Generator,
    item_id: str,
    category: int,
    spec: CategorySpec,
    brands: list[str],
    first_day: int,
    brand: str | None = None,
    noun: str | None = None,
) -> Item:
    """One item whose title and description are composed from its category's vocabulary."""
    brand = brand or brands[rng.integers(len(brands))]
    noun = noun or spec.nouns[rng.integers(len(spec.nouns))]
    adj, adj2 = rng.choice(spec.adjectives, size=2, replace=False)
    material = spec.materials[rng.integers(len(spec.materials))]
    feature, feature2 = rng.choice(spec.features, size=2, replace=False)
    suffix = MODEL_SUFFIXES[rng.integers(len(MODEL_SUFFIXES))]
    with_material = rng.random() < 0.4
    words = [brand, _capitalise(str(adj))]
    if with_material:
        words.append(material)
    words.append(noun)
    if suffix:
        words.append(suffix)
    title = " ".join(words)
    template = DESCRIPTION_TEMPLATES[rng.integers(len(DESCRIPTION_TEMPLATES))]
    description = template.format(
        Adj=_capitalise(str(adj)),
        adj=adj,
        adj2=adj2,
        Adj2=_capitalise(str(adj2)),
        noun=noun,
        material=material,
        Feature=_capitalise(str(feature)),
        feature=feature,
        Feature2=_capitalise(str(feature2)),
        feature2=feature2,
        brand=brand,
        Brand=brand,
        title=title,
        category_l=spec.name.lower(),
    )
    lo, hi = spec.price_range
    # Log-uniform within the category's range: many cheap items, a few expensive ones.
    price = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    if suffix in {"Pro", "Max", "Ultra"}:
        price *= 1.3
    price = round(max(price, 0.99), 2)
    return Item(item_id, title, category, brand, noun, price, description, first_day)


def _make_bundles(
    rng: np.random.Generator, items: list[Item], specs: list[CategorySpec], n_bundles: int
) -> list[tuple[int, ...]]:
    """Anchor + 1-2 complements (same brand when the brand sells in the complement category)."""
    index = {spec.name: i for i, spec in enumerate(specs)}
    by_category: list[list[int]] = [[] for _ in specs]
    for i, item in enumerate(items):
        by_category[item.category].append(i)
    bundles: list[tuple[int, ...]] = []
    anchors = rng.choice(len(items), size=min(n_bundles, len(items)), replace=False)
    for anchor in anchors:
        item = items[int(anchor)]
        partner_cats = [index[c] for c in specs[item.category].complements if c in index]
        if not partner_cats:
            partner_cats = [item.category]
        members = [int(anchor)]
        for _ in range(int(rng.integers(1, 3))):
            cat = int(rng.choice(partner_cats))
            pool = [j for j in by_category[cat] if j not in members]
            if not pool:
                continue
            same_brand = [j for j in pool if items[j].brand == item.brand]
            source = same_brand if same_brand and rng.random() < 0.6 else pool
            members.append(int(source[rng.integers(len(source))]))
        if len(members) > 1:
            bundles.append(tuple(members))
    return bundles


def zipf_weights(rng: np.random.Generator, n: int, alpha: float) -> np.ndarray:
    """Long-tail weights rank^-alpha assigned to the n items in random order."""
    ranks = rng.permutation(n) + 1
    return ranks.astype(float) ** -alpha


def build_world(cfg: GeneratorConfig) -> World:
    """Catalog, bundles and users, from the seed and sizes alone."""
    rng = make_rng(cfg.seed, STREAM_WORLD)
    specs = category_specs(cfg.n_categories)
    brands = _assign_brands(rng, specs)
    # Categories differ in size (some shelves are much bigger than others).
    shares = rng.dirichlet(np.full(len(specs), 4.0))
    cats = rng.choice(len(specs), size=cfg.n_items, p=shares)
    # Every category gets at least one item (when there are enough items).
    n_seeded = min(len(specs), cfg.n_items)
    cats[:n_seeded] = np.arange(n_seeded)
    items = [
        make_item(rng, f"I{i + 1:05d}", int(c), specs[int(c)], brands[int(c)], first_day=0)
        for i, c in enumerate(cats)
    ]
    popularity = zipf_weights(rng, len(items), cfg.popularity_alpha)
    bundles = _make_bundles(rng, items, specs, n_bundles=max(1, cfg.n_items // 8))

    n_users = cfg.n_users
    # Low concentration: each user cares about a handful of categories.
    category_pref = rng.dirichlet(np.full(len(specs), 0.25), size=n_users)
    favourite_brands = []
    for u in range(n_users):
        top = np.argsort(-category_pref[u])[:2]
        pool = sorted({b for c in top for b in brands[int(c)]})
        k = min(len(pool), int(rng.integers(1, 4)))
        favourite_brands.append(frozenset(rng.choice(pool, size=k, replace=False).tolist()))
    activity = rng.gamma(shape=1.5, scale=1 / 1.5, size=n_users)
    # Drift: tastes move towards a few trending categories, chosen once per world.
    drift_rng = make_rng(cfg.seed, STREAM_DRIFT)
    trending = drift_rng.choice(len(specs), size=max(1, len(specs) // 5), replace=False)
    trend = np.full(len(specs), 0.2 / len(specs))
    trend[trending] += 0.8 / len(trending)
    shifted = 0.3 * category_pref[:, drift_rng.permutation(len(specs))] + 0.7 * trend
    coupons = [f"{word}{int(rng.integers(1, 10)) * 5}" for word in COUPON_WORDS]
    return World(
        categories=[s.name for s in specs],
        specs=specs,
        brands_by_category=brands,
        items=items,
        popularity=popularity,
        bundles=bundles,
        user_ids=[f"U{u + 1:05d}" for u in range(n_users)],
        category_pref=category_pref,
        favourite_brands=favourite_brands,
        activity=activity,
        shifted_category_pref=shifted / shifted.sum(axis=1, keepdims=True),
        coupons=coupons,
    )


def new_items_on_day(world: World, cfg: GeneratorConfig, day: int) -> list[Item]:
    """Items launched on ``day`` (drift.new_items a day from drift.start_day on, day >= 1)."""
    per_day = cfg.drift.new_items
    start = max(cfg.drift.start_day, 1)
    if per_day == 0 or day < start:
        return []
    rng = make_rng(cfg.seed, STREAM_NEW_ITEMS, day)
    first_number = cfg.n_items + (day - start) * per_day + 1
    new = []
    for j in range(per_day):
        c = int(rng.integers(len(world.specs)))
        new.append(
            make_item(
                rng,
                f"I{first_number + j:05d}",
                c,
                world.specs[c],
                world.brands_by_category[c],
                first_day=day,
            )
        )
    return new


def catalog_until(world: World, cfg: GeneratorConfig, day: int) -> tuple[list[Item], np.ndarray]:
    """Items available on ``day`` and their popularity (new items get a launch boost)."""
    items = list(world.items)
    weights = [world.popularity]
    for d in range(1, day + 1):
        new = new_items_on_day(world, cfg, d)
        if new:
            items.extend(new)
            # A launch is promoted: new items sit among the top sellers' weights.
            rng = make_rng(cfg.seed, STREAM_NEW_ITEMS, 10_000 + d)
            weights.append(world.popularity.max() * rng.uniform(0.02, 0.3, size=len(new)))
    return items, np.concatenate(weights)
