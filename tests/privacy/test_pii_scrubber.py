"""The personal-data scrubber (ml/validation/pii.py): entities, tricky negatives, odd input."""

from __future__ import annotations

import pytest

from ml.core.config.privacy import PrivacyConfig
from ml.validation.pii import find_pii, mask_for_validation, scrub_text, scrub_texts

CFG = PrivacyConfig()


@pytest.mark.parametrize(
    ("text", "entity", "value"),
    [
        (
            "mail me at anna.schmidt+returns@gmail.com please",
            "EMAIL",
            "anna.schmidt+returns@gmail.com",
        ),
        ("MY EMAIL IS JOHN.DOE@OUTLOOK.COM", "EMAIL", "JOHN.DOE@OUTLOOK.COM"),
        ("call me on +44 20 7946 0958 tonight", "PHONE", "+44 20 7946 0958"),
        ("my number is (415) 867-5309", "PHONE", "(415) 867-5309"),
        ("ring 030 12345678", "PHONE", "030 12345678"),
        ("paid with 4111 1111 1111 1111 twice", "CARD", "4111 1111 1111 1111"),
        ("card 5500-0000-0000-0004 declined", "CARD", "5500-0000-0000-0004"),
        ("amex 3782 822463 10005 declined", "CARD", "3782 822463 10005"),
        ("refund to DE89 3704 0044 0532 0130 00", "IBAN", "DE89 3704 0044 0532 0130 00"),
        ("iban GB82WEST12345698765432", "IBAN", "GB82WEST12345698765432"),
        ("blocked from 192.168.10.4 again", "IP", "192.168.10.4"),
        ("ipv6 2001:db8:85a3::8a2e:370:7334 blocked", "IP", "2001:db8:85a3::8a2e:370:7334"),
        ("ship to 221B Baker Street, London", "ADDRESS", "221B Baker Street"),
        ("deliver to Hauptstraße 12 in Berlin", "ADDRESS", "Hauptstraße 12"),
        ("my name is Anna Schmidt and my parcel is late", "PERSON", "Anna Schmidt"),
        ("Hi, Maria Garcia here, where is my order", "PERSON", "Maria Garcia"),
        ("where is my parcel. thanks, Olivia", "PERSON", "Olivia"),
    ],
)
def test_each_entity_is_replaced_by_its_placeholder(text: str, entity: str, value: str) -> None:
    scrubbed, spans = scrub_text(text, CFG)
    assert value not in scrubbed
    assert f"<{entity}>" in scrubbed
    assert [s.entity for s in spans] == [entity]
    assert text[spans[0].start : spans[0].end] == value


@pytest.mark.parametrize(
    "text",
    [
        "gift card 4111 1111 1111 1112 does not work",  # 16 digits, Luhn fails
        "order ORD-4155550132 never arrived",  # allow-listed, shaped like a phone
        "order #4155550132 never arrived",
        "coupon SAVE20 on ORD-12345",
        "i bought 3 items for 150 euros on 12.11.2026",
        "firmware version 1.2.3 on my router",
        "buy 2 park benches and 5 way adapters",
        "where is my Apple Watch order",
        "is the Nike Air Max in stock in Berlin",
    ],
)
def test_tricky_negatives_are_kept(text: str) -> None:
    assert scrub_text(text, CFG) == (text, [])


def test_allow_list_comes_from_the_settings() -> None:
    text = "order ORD-4155550132 never arrived"
    # Without the allow-list the phone-shaped order id is scrubbed: the setting does the work.
    assert scrub_text(text, CFG.model_copy(update={"allow_list": []}))[0] != text


@pytest.mark.parametrize(
    "value", ["", "   ", "ünïcödé ☃ 😀 " * 2000, "a" * 100_000, "\x00\x01 \ufffd", "@@@ 1234"]
)
def test_odd_input_never_crashes(value: str) -> None:
    scrubbed, _ = scrub_text(value, CFG)
    assert isinstance(scrubbed, str)


def test_batch_keeps_non_strings_and_counts_by_type() -> None:
    texts = [None, 3.5, "a@b.com and c@d.org", "a@b.com and c@d.org", "nothing here"]
    result = scrub_texts(texts, CFG)
    assert result.texts[:2] == [None, 3.5]
    assert result.texts[2] == result.texts[3] == "<EMAIL> and <EMAIL>"
    assert result.counts == {"EMAIL": 4} and result.rows_with_pii == 2


def test_validation_mask_keeps_lengths_and_hides_every_span() -> None:
    texts = [None, "mail a.b@c.de or call +44 20 7946 0958", "hi", "x@y.org " + "z" * 600]
    masked = mask_for_validation(texts, CFG, max_chars=512)
    assert [None if t is None else len(t) for t in masked] == [
        None if t is None else len(t) for t in texts
    ]
    assert masked[1] == "mail <EMAIL>_ or call <PHONE>_________"
    assert masked[2] == "hi"
    assert set(masked[3]) == {"#"}  # over the length limit: hidden whole, never analysed
    assert mask_for_validation(texts, CFG.model_copy(update={"enabled": False}), 512) == texts


def test_disabled_scrubber_changes_nothing() -> None:
    off = CFG.model_copy(update={"enabled": False})
    assert scrub_texts(["a@b.com"], off).texts == ["a@b.com"]


def test_entities_setting_limits_what_is_scrubbed() -> None:
    only_email = CFG.model_copy(update={"entities": ["EMAIL"]})
    assert [s.entity for s in find_pii("a@b.com, 192.168.1.1", only_email)] == ["EMAIL"]


def test_unknown_entity_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="unknown entities"):
        PrivacyConfig(entities=["SSN"])
