"""One day of customer-support utterances with intents, slots filled from the catalog.

Every shop intent appears every day (counts follow imbalanced priors with a floor), plus
``out_of_scope`` chit-chat. Texts get a greeting/closing, typos (swapped, dropped and doubled
letters), casing noise and a small rate of confusable label noise. Under drift, intent priors
tilt and new phrasings (``DRIFT_TEMPLATES``) appear.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field

import numpy as np

from ml.core.config.data import GeneratorConfig
from ml.core.schemas import OUT_OF_SCOPE, SHOP_INTENTS
from ml.data.intent_templates import (
    CITIES,
    CONFUSABLE,
    DRIFT_TEMPLATES,
    INTENT_PRIORS,
    PAYMENTS,
    PREFIXES,
    STREETS,
    SUFFIXES,
    TEMPLATES,
)
from ml.data.pii_samples import PiiSpan, inject_pii
from ml.data.world import (
    STREAM_DRIFT,
    STREAM_PII,
    STREAM_UTTERANCES,
    Item,
    World,
    catalog_until,
    make_rng,
)

SECONDS_PER_DAY = 86_400
PRICES = ("20", "30", "50", "75", "100", "150", "200", "300", "500")
_FORMATTER = string.Formatter()


@dataclass(frozen=True)
class Utterance:
    second: int
    text: str
    # The label as annotated (label noise included) and the intent the text was written for.
    intent: str
    true_intent: str
    template: str
    drifted: bool
    slots: dict[str, str] = field(default_factory=dict)
    # Ground truth for the personal-data scrubber: street addresses from the {address} slot
    # and what generator.pii_rate injected (and its decoys), as spans of ``text``.
    pii: tuple[PiiSpan, ...] = ()


def template_slots(template: str) -> list[str]:
    """Slot names used in a template, e.g. ``["product", "order"]``."""
    return [name for _, name, _, _ in _FORMATTER.parse(template) if name]


def intent_counts(cfg: GeneratorConfig, day: int) -> dict[str, int]:
    """How many utterances of each intent ``day`` gets: priors, a floor, drift tilt."""
    n = cfg.utterances_per_day
    n_oos = round(n * cfg.out_of_scope_rate)
    n_shop = n - n_oos
    priors = np.array([INTENT_PRIORS[i] for i in SHOP_INTENTS])
    drift = cfg.drift
    if drift.strength > 0 and day >= drift.start_day:
        # Some intents surge (a delivery crisis, a sale), chosen once per seed.
        tilt = make_rng(cfg.seed, STREAM_DRIFT, 1).normal(0, 1, size=len(priors))
        priors = priors * np.exp(1.5 * drift.strength * tilt)
    priors = priors / priors.sum()
    floor = min(3, n_shop // len(SHOP_INTENTS))
    rest = n_shop - floor * len(SHOP_INTENTS)
    raw = priors * rest
    counts = np.floor(raw).astype(int)
    # Largest remainder keeps the total exact and the rounding deterministic.
    for k in np.argsort(-(raw - counts), kind="stable")[: rest - counts.sum()]:
        counts[k] += 1
    result = {intent: int(c) + floor for intent, c in zip(SHOP_INTENTS, counts, strict=True)}
    result[OUT_OF_SCOPE] = n_oos
    return result


def _fill_slots(
    rng: np.random.Generator,
    world: World,
    items: list[Item],
    cumulative: np.ndarray,
    names: list[str],
) -> dict[str, str]:
    # One item per utterance, so product, brand, noun and category agree with each other.
    item = items[int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))]
    city = CITIES[rng.integers(len(CITIES))]
    values = {
        "product": item.title if rng.random() < 0.7 else f"{item.brand} {item.noun}",
        "brand": item.brand,
        "noun": item.noun,
        "category": world.categories[item.category].lower(),
        "order": (
            f"#{rng.integers(10**6, 10**7)}"
            if rng.random() < 0.6
            else f"ORD-{rng.integers(10**4, 10**5)}"
        ),
        "coupon": world.coupons[rng.integers(len(world.coupons))],
        "city": city,
        "price": PRICES[rng.integers(len(PRICES))],
        "address": f"{rng.integers(1, 250)} {STREETS[rng.integers(len(STREETS))]} Street, {city}",
        "payment": PAYMENTS[rng.integers(len(PAYMENTS))],
    }
    return {name: values[name] for name in names}


def add_typos(rng: np.random.Generator, text: str, rate: float) -> str:
    """Per word (4+ letters), with probability ``rate``: swap, drop or double a letter."""
    if rate <= 0:
        return text
    words = text.split(" ")
    for w, word in enumerate(words):
        if len(word) < 4 or not word.isalpha() or rng.random() >= rate:
            continue
        k = int(rng.integers(1, len(word) - 1))
        kind = int(rng.integers(3))
        if kind == 0:
            word = word[:k] + word[k + 1] + word[k] + word[k + 2 :]
        elif kind == 1:
            word = word[:k] + word[k + 1 :]
        else:
            word = word[:k] + word[k] + word[k:]
        words[w] = word
    return " ".join(words)


def _apply_casing(rng: np.random.Generator, text: str, noise_rate: float) -> str:
    if rng.random() >= noise_rate:
        return text[:1].upper() + text[1:]
    roll = rng.random()
    if roll < 0.6:
        return text.lower()
    if roll < 0.8:
        return text.upper()
    return text.title()


def _noisy_label(rng: np.random.Generator, intent: str, rate: float) -> str:
    if rng.random() >= rate:
        return intent
    neighbours = CONFUSABLE.get(intent) or tuple(i for i in SHOP_INTENTS if i != intent)
    return str(neighbours[rng.integers(len(neighbours))])


def slot_address_spans(text: str, slots: dict[str, str]) -> list[PiiSpan]:
    """Where the ``{address}`` slot's street part (``12 Oak Street``) ended up in ``text``,
    after prefixes, typos and casing noise."""
    address = slots.get("address")
    if not address:
        return []
    number = address.split(" ", 1)[0]
    match = re.search(rf"\b{number} \S+ street\b", text, flags=re.IGNORECASE)
    if match is None:
        return []
    return [PiiSpan("ADDRESS", match.start(), match.end(), match.group(0))]


def generate_utterances(world: World, cfg: GeneratorConfig, day: int) -> list[Utterance]:
    """``cfg.utterances_per_day`` utterances for ``day``, in time order."""
    rng = make_rng(cfg.seed, STREAM_UTTERANCES, day)
    items, popularity = catalog_until(world, cfg, day)
    cumulative = np.cumsum(popularity)  # customers ask about what people buy
    drift = cfg.drift
    share = 0.5 * drift.strength if drift.phrasing_share is None else drift.phrasing_share
    drift_share = (
        share if drift.new_phrasing and drift.strength > 0 and day >= drift.start_day else 0.0
    )
    intents = [intent for intent, count in intent_counts(cfg, day).items() for _ in range(count)]
    seconds = np.sort(rng.integers(0, SECONDS_PER_DAY, size=len(intents)))
    order = rng.permutation(len(intents))
    pii_rng = make_rng(cfg.seed, STREAM_PII, day) if cfg.pii_rate > 0 else None
    out: list[Utterance] = []
    for second, k in zip(seconds, order, strict=True):
        intent = intents[int(k)]
        drifted = bool(rng.random() < drift_share)
        pool = DRIFT_TEMPLATES[intent] if drifted else TEMPLATES[intent]
        template = pool[rng.integers(len(pool))]
        slots = _fill_slots(rng, world, items, cumulative, template_slots(template))
        text = PREFIXES[rng.integers(len(PREFIXES))] + template.format(**slots)
        text += SUFFIXES[rng.integers(len(SUFFIXES))]
        text = _apply_casing(rng, add_typos(rng, text, cfg.typo_rate), cfg.casing_noise_rate)
        label = (
            intent if intent == OUT_OF_SCOPE else _noisy_label(rng, intent, cfg.label_noise_rate)
        )
        text, injected = inject_pii(pii_rng, text, cfg.pii_rate) if pii_rng else (text, [])
        pii = (*slot_address_spans(text, slots), *injected)
        out.append(Utterance(int(second), text, label, intent, template, drifted, slots, pii))
    return out
