"""One day of shop sessions: view / add_to_cart / purchase events driven by the users' tastes.

A session has a mission. *Browse* sessions pick a category from the user's (possibly drifted)
preferences and view popular items there, favouring the user's brands and hopping to similar
items (same noun); some views are carted and some carts bought. *Bundle* sessions start at a
bundle's anchor item and go on to its complements (camera -> memory card), in that order, which
gives sequence models a pattern that most-popular cannot see.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from ml.core.config.data import GeneratorConfig
from ml.data.world import STREAM_EVENTS, Item, World, catalog_until, make_rng

SECONDS_PER_DAY = 86_400
# Relative traffic per hour of day (UTC): quiet nights, a lunch bump, busy evenings.
HOURLY_TRAFFIC = np.array(
    [2, 1, 1, 1, 1, 2, 3, 5, 6, 6, 7, 8, 9, 8, 7, 7, 8, 9, 11, 12, 12, 10, 7, 4], dtype=float
)
BUNDLE_SESSION_RATE = 0.3
CART_RATE = 0.45
CART_RATE_FAVOURITE = 0.65
PURCHASE_RATE = 0.6
SIMILAR_HOP_RATE = 0.3


@dataclass(frozen=True)
class Event:
    second: int  # seconds since the day's midnight (UTC)
    session: int
    user: str
    item_id: str
    event_type: str


def effective_preferences(world: World, cfg: GeneratorConfig, day: int) -> np.ndarray:
    """User x category preferences on ``day``: mixed towards the shifted tastes under drift."""
    drift = cfg.drift
    if drift.strength > 0 and drift.shift_preferences and day >= drift.start_day:
        mixed = (
            1 - drift.strength
        ) * world.category_pref + drift.strength * world.shifted_category_pref
        return mixed / mixed.sum(axis=1, keepdims=True)
    return world.category_pref


class _DayCatalog:
    """Lookup tables for one day's available items."""

    def __init__(self, items: list[Item], popularity: np.ndarray, n_categories: int) -> None:
        self.items = items
        self.popularity = popularity
        self.by_category = [
            np.flatnonzero([it.category == c for it in items]) for c in range(n_categories)
        ]
        similar: dict[tuple[int, str], list[int]] = defaultdict(list)
        for i, item in enumerate(items):
            similar[(item.category, item.noun)].append(i)
        self.similar = {key: np.array(idx) for key, idx in similar.items()}


def _pick(rng: np.random.Generator, candidates: np.ndarray, weights: np.ndarray) -> int:
    return int(candidates[rng.choice(len(candidates), p=weights / weights.sum())])


def _browse_session(
    rng: np.random.Generator,
    day_catalog: _DayCatalog,
    prefs: np.ndarray,
    favourites: frozenset[str],
) -> list[tuple[int, str]]:
    category = int(rng.choice(len(prefs), p=prefs))
    candidates = day_catalog.by_category[category]
    if len(candidates) == 0:
        return []
    items = day_catalog.items
    boost = np.array([4.0 if items[i].brand in favourites else 1.0 for i in candidates])
    weights = day_catalog.popularity[candidates] * boost
    viewed: list[int] = []
    for _ in range(1 + int(rng.poisson(3))):
        if viewed and rng.random() < SIMILAR_HOP_RATE:
            last = items[viewed[-1]]
            similar = day_catalog.similar[(last.category, last.noun)]
            viewed.append(_pick(rng, similar, day_catalog.popularity[similar]))
        else:
            viewed.append(_pick(rng, candidates, weights))
    steps: list[tuple[int, str]] = []
    carted: list[int] = []
    for i in viewed:
        steps.append((i, "view"))
        rate = CART_RATE_FAVOURITE if items[i].brand in favourites else CART_RATE
        if i not in carted and rng.random() < rate:
            steps.append((i, "add_to_cart"))
            carted.append(i)
    steps.extend((i, "purchase") for i in carted if rng.random() < PURCHASE_RATE)
    return steps


def _bundle_session(
    rng: np.random.Generator, day_catalog: _DayCatalog, bundle: tuple[int, ...]
) -> list[tuple[int, str]]:
    anchor = bundle[0]
    steps: list[tuple[int, str]] = []
    # Shoppers compare a couple of alternatives before settling on the anchor.
    alternatives = day_catalog.similar[
        (day_catalog.items[anchor].category, day_catalog.items[anchor].noun)
    ]
    for _ in range(int(rng.integers(0, 3))):
        steps.append((int(alternatives[rng.integers(len(alternatives))]), "view"))
    carted = []
    for position, i in enumerate(bundle):
        steps.append((i, "view"))
        if rng.random() < (0.9 if position == 0 else 0.8):
            steps.append((i, "add_to_cart"))
            carted.append(i)
    steps.extend((i, "purchase") for i in carted if rng.random() < 0.75)
    return steps


def generate_events(world: World, cfg: GeneratorConfig, day: int) -> tuple[list[Item], list[Event]]:
    """The catalog available on ``day`` and that day's events, in time order."""
    rng = make_rng(cfg.seed, STREAM_EVENTS, day)
    items, popularity = catalog_until(world, cfg, day)
    day_catalog = _DayCatalog(items, popularity, len(world.categories))
    prefs = effective_preferences(world, cfg, day)
    bundles = world.bundles
    anchor_category = np.array([items[b[0]].category for b in bundles], dtype=int)
    anchor_popularity = np.array([popularity[b[0]] for b in bundles])
    hour_p = HOURLY_TRAFFIC / HOURLY_TRAFFIC.sum()

    sessions_per_user = rng.poisson(cfg.sessions_per_user_per_day * world.activity)
    starts: list[tuple[int, int]] = []  # (start second, user index)
    for u, count in enumerate(sessions_per_user):
        for _ in range(int(count)):
            second = int(rng.choice(24, p=hour_p)) * 3600 + int(rng.integers(3600))
            starts.append((second, u))
    starts.sort()

    events: list[Event] = []
    for session, (start, u) in enumerate(starts):
        if bundles and rng.random() < BUNDLE_SESSION_RATE:
            weights = anchor_popularity * prefs[u, anchor_category]
            bundle = bundles[int(rng.choice(len(bundles), p=weights / weights.sum()))]
            steps = _bundle_session(rng, day_catalog, bundle)
        else:
            steps = _browse_session(rng, day_catalog, prefs[u], world.favourite_brands[u])
        second = start
        for item_index, event_type in steps:
            events.append(
                Event(
                    min(second, SECONDS_PER_DAY - 1),
                    session,
                    world.user_ids[u],
                    items[item_index].item_id,
                    event_type,
                )
            )
            second += 5 + int(rng.exponential(45))
    # Sessions near midnight are clipped to the day, so order by (time, session, step).
    order = sorted(range(len(events)), key=lambda k: (events[k].second, events[k].session, k))
    return items, [events[k] for k in order]
