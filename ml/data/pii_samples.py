"""Realistic personal data for the synthetic shop (``generator.pii_rate``), with ground truth.

A share ``pii_rate`` of a day's utterances gets one piece of personal data (an e-mail with or
without a plus tag, a phone number in one of several national and international formats, a
Luhn-valid card number, an IBAN with a valid checksum, an IPv4/IPv6 address, a street address
or a person's name) in a natural phrase; about half as many get a decoy that is *not* personal
data (an order id shaped like a phone number, a 16-digit number failing the Luhn check). The
label never changes. Spans are recorded on :class:`~ml.data.utterances.Utterance` (``pii``);
they are never written next to the data. Draws come from their own random stream, so
``pii_rate: 0`` leaves every text byte for byte as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PII_KINDS = ("EMAIL", "PHONE", "CARD", "IBAN", "IP", "ADDRESS", "PERSON")
DECOY = "DECOY"  # a span that looks like personal data but is not (must be kept)

FIRST = (
    "Anna",
    "James",
    "Maria",
    "Lukas",
    "Sofia",
    "Omar",
    "Emily",
    "Piotr",
    "Chloe",
    "Raj",
    "Hannah",
    "Diego",
    "Yuki",
    "Fatima",
    "Oliver",
    "Ingrid",
    "Tobias",
    "Mei",
    "Kwame",
)
LAST = (
    "Schmidt",
    "Johnson",
    "Garcia",
    "Nowak",
    "Rossi",
    "Haddad",
    "Brown",
    "Kowalski",
    "Dubois",
    "Patel",
    "Müller",
    "Fernández",
    "Tanaka",
    "Okafor",
    "O'Brien",
    "Van Dijk",
)
DOMAINS = (
    "gmail.com",
    "outlook.com",
    "yahoo.co.uk",
    "web.de",
    "proton.me",
    "icloud.com",
    "mail.example-shop.store",
    "company.io",
)
STREET_NAMES = (
    "Oak",
    "Maple",
    "Baker",
    "Elm Tree",
    "Station",
    "King George",
    "Sunset",
    "Church",
    "High",
    "Mill",
)
STREET_SUFFIXES = ("Street", "St.", "Avenue", "Ave", "Road", "Lane", "Boulevard", "Drive")
GERMAN_STREETS = ("Hauptstraße", "Bahnhofstraße", "Lindenweg", "Schillerstrasse", "Marktplatz")
AREA = {"US": ("212", "415", "312", "617", "206", "303", "512")}

PHRASES = {
    "EMAIL": ("my email is {}", "reach me at {}", "send the invoice to {}", "contact: {}"),
    "PHONE": ("call me on {}", "my number is {}", "phone {}", "text me at {}"),
    "CARD": ("I paid with card {}", "card number {}", "charged twice on {}"),
    "IBAN": ("refund to my IBAN {}", "my bank account is {}", "IBAN: {}"),
    "IP": ("the site blocks my IP {}", "login from {} failed", "my ip is {}"),
    "ADDRESS": ("I live at {}", "deliver to {}", "my address is {}"),
    "PERSON": ("my name is {}", "{} here", "regards, {}", "this is {} speaking"),
}


@dataclass(frozen=True)
class PiiSpan:
    entity: str  # one of PII_KINDS, or DECOY
    start: int
    end: int
    value: str


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _digits(rng: np.random.Generator, n: int) -> str:
    return "".join(str(int(d)) for d in rng.integers(0, 10, size=n))


def luhn_digit(partial: str) -> str:
    """The check digit that makes ``partial + digit`` pass the Luhn test."""
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return str((10 - total % 10) % 10)


def _email(rng: np.random.Generator) -> str:
    first, last = _pick(rng, FIRST).lower(), _pick(rng, LAST).lower().replace("'", "")
    last = last.replace(" ", "").replace("ü", "ue").replace("á", "a")
    local = _pick(rng, (f"{first}.{last}", f"{first}{last[:1]}{rng.integers(1, 99)}", first))
    if rng.random() < 0.35:
        local += "+" + _pick(rng, ("shop", "orders", "spam", "2026"))
    return f"{local}@{_pick(rng, DOMAINS)}"


def _phone(rng: np.random.Generator) -> str:
    area, ex, line = _pick(rng, AREA["US"]), str(rng.integers(200, 999)), _digits(rng, 4)
    formats = (
        f"({area}) {ex}-{line}",
        f"{area}-{ex}-{line}",
        f"+1 {area} {ex} {line}",
        f"+44 20 7946 {_digits(rng, 4)}",
        f"07911 {rng.integers(100000, 999999)}",
        f"+49 30 {rng.integers(1000000, 9999999)}",
        f"+49 151 {rng.integers(10000000, 99999999)}",
        f"+33 6 {' '.join(_digits(rng, 2) for _ in range(4))}",
    )
    return _pick(rng, formats)


def _card(rng: np.random.Generator) -> str:
    kind = int(rng.integers(3))
    if kind == 2:  # American Express: 15 digits, 4-6-5
        body = _pick(rng, ("34", "37")) + _digits(rng, 12)
        number = body + luhn_digit(body)
        return f"{number[:4]} {number[4:10]} {number[10:]}"
    body = (
        (_pick(rng, ("4",)) + _digits(rng, 14))
        if kind == 0
        else ("5" + str(rng.integers(1, 6)) + _digits(rng, 13))
    )
    number = body + luhn_digit(body)
    sep = _pick(rng, (" ", "-", ""))
    return sep.join(number[i : i + 4] for i in range(0, 16, 4))


def _iban(rng: np.random.Generator) -> str:
    country = _pick(rng, ("DE", "GB", "NL", "ES", "FR"))
    bban = {
        "DE": _digits(rng, 18),
        "GB": "NWBK" + _digits(rng, 14),
        "NL": "ABNA" + _digits(rng, 10),
        "ES": _digits(rng, 20),
        "FR": _digits(rng, 23),
    }[country]
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    iban = f"{country}{98 - int(numeric) % 97:02d}{bban}"
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4)) if rng.random() < 0.6 else iban


def _ip(rng: np.random.Generator) -> str:
    if rng.random() < 0.7:
        return ".".join(str(int(x)) for x in [rng.integers(11, 223), *rng.integers(0, 256, size=3)])
    return ":".join(f"{int(x):x}" for x in [0x2001, 0xDB8, *rng.integers(0, 65536, size=6)])


def _address(rng: np.random.Generator) -> str:
    if rng.random() < 0.2:
        return f"{_pick(rng, GERMAN_STREETS)} {rng.integers(1, 120)}"
    return f"{rng.integers(1, 2500)} {_pick(rng, STREET_NAMES)} {_pick(rng, STREET_SUFFIXES)}"


def _person(rng: np.random.Generator) -> str:
    return f"{_pick(rng, FIRST)} {_pick(rng, LAST)}"


MAKERS = {
    "EMAIL": _email,
    "PHONE": _phone,
    "CARD": _card,
    "IBAN": _iban,
    "IP": _ip,
    "ADDRESS": _address,
    "PERSON": _person,
}


def _decoy(rng: np.random.Generator) -> tuple[str, str]:
    """(phrase, value) of something that must be kept."""
    if rng.random() < 0.5:
        value = _pick(rng, (f"ORD-{_digits(rng, 10)}", f"#{rng.integers(2, 10)}{_digits(rng, 9)}"))
        return "order {}", value
    body = "4" + _digits(rng, 14)
    bad = str((int(luhn_digit(body)) + 1 + int(rng.integers(9))) % 10)
    number = body + bad
    return "gift card {}", " ".join(number[i : i + 4] for i in range(0, 16, 4))


def _append(text: str, phrase: str, value: str, entity: str) -> tuple[str, PiiSpan]:
    before, after = phrase.split("{}")
    head = f"{text.rstrip()}. {before}" if text.strip() else before
    span = PiiSpan(entity, len(head), len(head) + len(value), value)
    return head + value + after, span


def inject_pii(rng: np.random.Generator, text: str, rate: float) -> tuple[str, list[PiiSpan]]:
    """``text`` with, at probability ``rate``, one piece of personal data appended (and at
    ``rate / 2`` a decoy); the spans of both."""
    spans: list[PiiSpan] = []
    if rng.random() < rate:
        kind = _pick(rng, PII_KINDS)
        text, span = _append(text, _pick(rng, PHRASES[kind]), MAKERS[kind](rng), kind)
        spans.append(span)
    if rng.random() < rate / 2:
        phrase, value = _decoy(rng)
        text, span = _append(text, phrase, value, DECOY)
        spans.append(span)
    return text, spans
