"""Personal-data scrubber benchmark: recall / precision per type, and throughput.

Two labelled sets: the synthetic shop's utterances with ``generator.pii_rate`` (ground-truth
spans from ml/data/pii_samples.py, plus the street addresses of the {address} slot, plus
decoys that must be kept: order ids shaped like phone numbers, 16 digits failing Luhn) and a
small hand-written set of tricky cases (TRICKY below). Two scrubbers: shopflow's
(ml/validation/pii.py: Presidio pattern recognizers + the shop's address and name recognizers,
allow-list) and the plain-regex scrubber a user might write (REGEX_BASELINE).

A truth span counts as found (recall) when a predicted span of the same type overlaps it; a
predicted span is correct (precision) when it overlaps a truth span of its type; "leaks" counts
truth values still present verbatim in the scrubbed text; "decoys kept" the share of decoys
left untouched. Throughput: texts per second over the whole generated set (distinct texts
only, engine already built). Numbers only, no asserts. Goals the issue sets: recall >= 0.99 for
EMAIL, CARD and PHONE; precision >= 0.95 overall.

    .venv/bin/python bench/pii_scrubber.py [--days 2 --per-day 1500 --pii-rate 0.3]
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path
from typing import Any

from ml.core.config.data import GeneratorConfig
from ml.core.config.privacy import PII_ENTITIES, PrivacyConfig
from ml.data.pii_samples import DECOY
from ml.data.utterances import generate_utterances
from ml.data.world import build_world
from ml.validation.pii import find_pii, scrub_text

RESULTS = Path(__file__).parent / "results" / "pii_scrubber.json"

# (text, [(entity, value), ...]); values absent from a row's list must be kept.
TRICKY: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "email me at j.doe+returns@gmail.com about ORD-4155550132",
        [("EMAIL", "j.doe+returns@gmail.com")],
    ),
    ("MY EMAIL IS ANNA.LEE@OUTLOOK.COM", [("EMAIL", "ANNA.LEE@OUTLOOK.COM")]),
    ("order #4155550132 never arrived", []),
    ("gift card 4111 1111 1111 1112 does not work", []),
    ("card 4111-1111-1111-1111 was charged twice", [("CARD", "4111-1111-1111-1111")]),
    ("amex 3782 822463 10005 declined", [("CARD", "3782 822463 10005")]),
    ("call me on +44 20 7946 0958 after 5", [("PHONE", "+44 20 7946 0958")]),
    ("my number is (415) 867-5309", [("PHONE", "(415) 867-5309")]),
    ("ring 030 12345678 please", [("PHONE", "030 12345678")]),
    ("i ordered 3 items for 150 euros on 12.11.2026", []),
    ("refund to DE89 3704 0044 0532 0130 00", [("IBAN", "DE89 3704 0044 0532 0130 00")]),
    ("iban GB82WEST12345698765432 thanks", [("IBAN", "GB82WEST12345698765432")]),
    ("login fails from 192.168.10.4", [("IP", "192.168.10.4")]),
    ("ipv6 2001:db8:85a3::8a2e:370:7334 blocked", [("IP", "2001:db8:85a3::8a2e:370:7334")]),
    ("firmware version 1.2.3 on my router", []),
    ("ship it to 221B Baker Street, London", [("ADDRESS", "221B Baker Street")]),
    ("deliver to Hauptstraße 12 in Berlin", [("ADDRESS", "Hauptstraße 12")]),
    ("buy 2 park benches and 5 way adapters", []),
    ("my name is anna", [("PERSON", "anna")]),
    ("Hi, this is Maria Garcia, where is my parcel", [("PERSON", "Maria Garcia")]),
    ("where is my Apple Watch order", []),
    ("is the Nike Air Max in stock", []),
    ("thanks, Olivia", [("PERSON", "Olivia")]),
    ("Mr Kowalski called about his refund", [("PERSON", "Kowalski")]),
    ("the Grand Hotel Berlin towel set", []),
    ("coupon SAVE20 for ORD-12345", []),
    ("", []),
    ("ünïcödé ☃ text without anything", []),
]

REGEX_BASELINE = {
    "EMAIL": r"[\w.+-]+@[\w-]+\.[\w.-]+",
    "CARD": r"\b(?:\d[ -]?){12,15}\d\b",
    "IBAN": r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,4})?\b",
    "PHONE": r"\+?\(?\d[\d\s().-]{7,}\d",
    "IP": r"\b\d{1,3}(?:\.\d{1,3}){3}\b",
}


def regex_spans(text: str) -> list[tuple[str, int, int]]:
    spans: list[tuple[str, int, int]] = []
    for entity, pattern in REGEX_BASELINE.items():
        for m in re.finditer(pattern, text):
            if not any(m.start() < e and s < m.end() for _, s, e in spans):
                spans.append((entity, m.start(), m.end()))
    return spans


def regex_scrub(text: str) -> str:
    for entity, start, end in sorted(regex_spans(text), key=lambda s: -s[1]):
        text = text[:start] + f"<{entity}>" + text[end:]
    return text


def labelled_generator_set(days: int, per_day: int, rate: float) -> list[tuple[str, list[Any]]]:
    cfg = GeneratorConfig(n_items=200, n_users=50, utterances_per_day=per_day, pii_rate=rate)
    world = build_world(cfg)
    rows = []
    for day in range(days):
        for u in generate_utterances(world, cfg, day):
            rows.append((u.text, [(s.entity, s.start, s.end, s.value) for s in u.pii]))
    return rows


def labelled_tricky() -> list[tuple[str, list[Any]]]:
    rows = []
    for text, truths in TRICKY:
        spans = []
        for entity, value in truths:
            start = text.index(value)
            spans.append((entity, start, start + len(value), value))
        rows.append((text, spans))
    return rows


def score(rows: list[tuple[str, list[Any]]], predict: Any, scrub: Any) -> dict[str, Any]:
    per: dict[str, dict[str, int]] = {
        e: {"truth": 0, "found": 0, "predicted": 0, "correct": 0, "leaks": 0} for e in PII_ENTITIES
    }
    decoys = decoys_kept = 0
    for text, truths in rows:
        predicted = predict(text)
        scrubbed = scrub(text) if truths else ""
        for entity, start, end, value in truths:
            if entity == DECOY:
                decoys += 1
                decoys_kept += value in scrub(text)
                continue
            per[entity]["truth"] += 1
            per[entity]["found"] += any(
                p[0] == entity and p[1] < end and start < p[2] for p in predicted
            )
            per[entity]["leaks"] += value in scrubbed
        for p in predicted:
            per[p[0]]["predicted"] += 1
            per[p[0]]["correct"] += any(
                t[0] == p[0] and t[1] < p[2] and p[1] < t[2] for t in truths
            )
    table = {
        e: {
            **c,
            "recall": c["found"] / c["truth"] if c["truth"] else None,
            "precision": c["correct"] / c["predicted"] if c["predicted"] else None,
        }
        for e, c in per.items()
    }
    predicted_all = sum(c["predicted"] for c in per.values())
    return {
        "per_type": table,
        "precision_overall": sum(c["correct"] for c in per.values()) / max(predicted_all, 1),
        "recall_overall": sum(c["found"] for c in per.values())
        / max(sum(c["truth"] for c in per.values()), 1),
        "decoys": decoys,
        "decoys_kept": decoys_kept,
    }


def throughput(texts: list[str], scrub: Any) -> float:
    start = time.perf_counter()
    for text in texts:
        scrub(text)
    return len(texts) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--per-day", type=int, default=1500)
    parser.add_argument("--pii-rate", type=float, default=0.3)
    args = parser.parse_args()
    cfg = PrivacyConfig()
    find_pii("warm up the engine: a@b.com", cfg)
    ours_predict = lambda t: [(s.entity, s.start, s.end) for s in find_pii(t, cfg)]  # noqa: E731
    ours_scrub = lambda t: scrub_text(t, cfg)[0]  # noqa: E731
    sets = {
        "generator": labelled_generator_set(args.days, args.per_day, args.pii_rate),
        "tricky": labelled_tricky(),
    }
    out: dict[str, Any] = {"settings": vars(args), "sets": {}}
    for name, rows in sets.items():
        out["sets"][name] = {
            "rows": len(rows),
            "shopflow": score(rows, ours_predict, ours_scrub),
            "regex_baseline": score(rows, regex_spans, regex_scrub),
        }
    texts = sorted({t for t, _ in sets["generator"]})
    out["throughput_texts_per_s"] = {
        "distinct_texts": len(texts),
        "shopflow": throughput(texts, ours_scrub),
        "regex_baseline": throughput(texts, regex_scrub),
    }
    print_table(out)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten {RESULTS}")


def _fmt(x: float | None) -> str:
    return "   -  " if x is None else f"{x:6.3f}"


def print_table(out: dict[str, Any]) -> None:
    for name, result in out["sets"].items():
        print(f"\n== {name} set ({result['rows']} texts) ==")
        print(
            f"{'type':<8} {'truth':>5} | {'recall':>6} {'prec':>6} {'leaks':>5} (shopflow)"
            f" | {'recall':>6} {'prec':>6} {'leaks':>5} (regex)"
        )
        ours, base = result["shopflow"], result["regex_baseline"]
        for e in PII_ENTITIES:
            o, b = ours["per_type"][e], base["per_type"][e]
            print(
                f"{e:<8} {o['truth']:>5} | {_fmt(o['recall'])} {_fmt(o['precision'])} "
                f"{o['leaks']:>5}            | {_fmt(b['recall'])} {_fmt(b['precision'])} "
                f"{b['leaks']:>5}"
            )
        print(
            f"overall precision: shopflow {ours['precision_overall']:.3f}, regex "
            f"{base['precision_overall']:.3f}; recall: shopflow {ours['recall_overall']:.3f}, "
            f"regex {base['recall_overall']:.3f}; decoys kept: shopflow "
            f"{ours['decoys_kept']}/{ours['decoys']}, regex {base['decoys_kept']}/{base['decoys']}"
        )
    tp = out["throughput_texts_per_s"]
    print(
        f"\nthroughput ({tp['distinct_texts']} distinct texts): shopflow "
        f"{tp['shopflow']:.0f} texts/s, regex baseline {tp['regex_baseline']:.0f} texts/s"
    )


if __name__ == "__main__":
    main()
