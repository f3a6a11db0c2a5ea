"""The shop's own personal-data recognizers, for what Presidio's pattern recognizers lack.

Presidio finds e-mails, phones, cards (Luhn), IBANs (checksum) and IPs by pattern; its person
and location finders need a downloaded NER model, which shopflow never has. So street addresses
and person names are found here by precise patterns: a house number followed by words and a
street word (``12 Oak Street``, ``Hauptstraße 5``), and a name after "my name is" / "name:",
after a title (``Mr Smith``), after a sign-off word at the end of a text, or a known first name
followed by a capitalised word (``Anna Schmidt``). Precision first: a capitalised word alone is
never a name.
"""

from __future__ import annotations

from typing import Any

import regex
from presidio_analyzer import EntityRecognizer, LocalRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

# Common first names (not also ordinary English or product words such as Mark, May, Bill).
FIRST_NAMES = [
    "Aaron",
    "Adam",
    "Ahmed",
    "Aisha",
    "Alex",
    "Alexander",
    "Alice",
    "Amelia",
    "Ana",
    "Andrea",
    "Andrew",
    "Anna",
    "Anne",
    "Antonio",
    "Benjamin",
    "Carlos",
    "Caroline",
    "Charlotte",
    "Chloe",
    "Chris",
    "Christian",
    "Christina",
    "Claire",
    "Daniel",
    "David",
    "Diego",
    "Dmitri",
    "Elena",
    "Elif",
    "Elizabeth",
    "Emily",
    "Emma",
    "Eric",
    "Ethan",
    "Eva",
    "Fatima",
    "Felix",
    "Francesca",
    "Gabriel",
    "George",
    "Hannah",
    "Harry",
    "Helen",
    "Isabella",
    "Ivan",
    "James",
    "Jan",
    "Javier",
    "Jennifer",
    "Jessica",
    "Joanna",
    "John",
    "Jonas",
    "Jose",
    "Joseph",
    "Julia",
    "Kai",
    "Karen",
    "Katarzyna",
    "Kevin",
    "Laura",
    "Lea",
    "Leon",
    "Linda",
    "Lisa",
    "Lucas",
    "Lucia",
    "Luis",
    "Lukas",
    "Maria",
    "Marie",
    "Marta",
    "Martin",
    "Mateo",
    "Matthew",
    "Mehmet",
    "Michael",
    "Mia",
    "Mohammed",
    "Natalia",
    "Nicole",
    "Noah",
    "Olga",
    "Oliver",
    "Olivia",
    "Omar",
    "Paolo",
    "Patricia",
    "Paul",
    "Pedro",
    "Peter",
    "Piotr",
    "Priya",
    "Rachel",
    "Rahul",
    "Raj",
    "Robert",
    "Sarah",
    "Sebastian",
    "Sergei",
    "Sofia",
    "Sophie",
    "Stefan",
    "Susan",
    "Thomas",
    "Tom",
    "Valentina",
    "Victoria",
    "Wei",
    "William",
    "Yuki",
    "Zoe",
]

_WORD = r"[^\W\d_][\w'’-]*"
_CAP = r"\p{Lu}[\p{Ll}'’-]+(?:-\p{Lu}[\p{Ll}]+)?"
_STREET_WORDS = (
    r"street|st|avenue|ave|road|rd|lane|ln|boulevard|blvd|drive|dr|way|court|ct|place|pl|"
    r"square|sq|terrace|crescent|close|highway|hwy|parkway|pkwy"
)
ADDRESS_PATTERNS = (
    # 12 Oak Street, 221B Baker St., 1600 Pennsylvania Avenue NW, 12 mill road apt 4
    rf"\b(?P<span>\d{{1,5}}[a-zA-Z]?,?\s+(?:{_WORD}\s+){{1,3}}(?i:{_STREET_WORDS})\b\.?"
    r"(?:\s+(?:NW|NE|SW|SE|N|S|E|W)\b)?(?:,?\s+(?i:apt|apartment|unit|suite|flat)\.?\s*\w+)?)",
    # Hauptstraße 12, Kirchweg 3a, Rue de Rivoli 10 / Calle Mayor 5 / Via Roma 1
    r"\b(?P<span>\p{Lu}\p{Ll}+(?i:straße|strasse|str\.|weg|gasse|platz|allee|laan|gracht)"
    r"\s+\d{1,4}[a-z]?)\b",
    r"\b(?P<span>(?:Rue|Calle|Via|Avenida|Rua|Avenue)\s+(?:(?:de|del|la|le|da|do|dos)\s+)?"
    r"\p{Lu}\p{Ll}+(?:\s+\p{Lu}\p{Ll}+)?,?\s+\d{1,4}[a-z]?)\b",
)


def person_patterns(first_names: list[str]) -> tuple[str, ...]:
    names = "|".join(sorted({regex.escape(n) for n in first_names}, key=len, reverse=True))
    return (
        # "my name is anna", "name: Anna Schmidt": the first word in any case, then capitalised.
        rf"(?i:\bmy name is|\bmy name's|\bname\s*:|\bi am called)\s+(?P<span>{_WORD}"
        rf"(?:\s+{_CAP}){{0,2}})",
        # Mr Smith, Mrs. Anna Lee, Dr Jones
        rf"\b(?:Mr|Mrs|Ms|Miss|Dr)\.?\s+(?P<span>{_CAP}(?:\s+{_CAP})?)",
        # "this is Kwame Okafor (speaking)", "Kwame Okafor here": two capitalised words
        rf"(?i:\bthis is|\bi am|\bi'm)\s+(?P<span>{_CAP}\s+{_CAP})\b",
        rf"(?:^|[.!?,;:]\s*)(?P<span>{_CAP}\s+{_CAP})\s+here\b",
        # Anna Schmidt (a known first name + a capitalised surname)
        rf"\b(?P<span>(?:{names})\s+{_CAP})\b",
        # "... thanks, Anna" / "regards, Ingrid Müller." ending a sentence or the text
        rf"(?i:thanks|thank you|regards|cheers|best|sincerely|signed),?\s+(?P<span>(?:{names})"
        rf"(?:\s+{_CAP})?|{_CAP}\s+{_CAP})(?=\s*(?:[.!?]|$))",
    )


class SpanPatternRecognizer(LocalRecognizer):  # type: ignore[misc]
    """Regexes whose named group ``span`` is the entity (the rest is context)."""

    def __init__(self, entity: str, patterns: tuple[str, ...], score: float, name: str):
        self._patterns = [regex.compile(p) for p in patterns]
        self._score = score
        super().__init__(supported_entities=[entity], name=name, supported_language="en")

    def load(self) -> None:
        """Nothing to load: the patterns compile in ``__init__``."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        entity = self.supported_entities[0]
        if entities and entity not in entities:
            return []
        found = []
        for pattern in self._patterns:
            for match in pattern.finditer(text, timeout=1.0):
                start, end = match.span("span")
                found.append(RecognizerResult(entity, start, end, self._score))
        return EntityRecognizer.remove_duplicates(found)  # type: ignore[no-any-return]


def address_recognizer() -> SpanPatternRecognizer:
    return SpanPatternRecognizer("STREET_ADDRESS", ADDRESS_PATTERNS, 0.7, "ShopAddressRecognizer")


def person_recognizer(extra_first_names: list[str]) -> SpanPatternRecognizer:
    names = [*FIRST_NAMES, *extra_first_names]
    return SpanPatternRecognizer("PERSON", person_patterns(names), 0.7, "ShopPersonRecognizer")


_DIGIT_BEFORE = regex.compile(r"\d[ .-]?$")
_DIGIT_AFTER = regex.compile(r"^[ .-]?\d")


def plausible_phone(text: str, start: int, end: int) -> bool:
    """7 to 15 digits (E.164) and not a piece of a longer number (a card's last groups)."""
    digits = sum(ch.isdigit() for ch in text[start:end])
    if not 7 <= digits <= 15:
        return False
    return not (_DIGIT_BEFORE.search(text[:start]) or _DIGIT_AFTER.match(text[end:]))


def phone_recognizer(regions: list[str]) -> Any:
    """Presidio's libphonenumber recognizer, minus matches inside longer digit runs: with
    several regions it finds "valid" numbers in 16-digit strings and IP addresses."""
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    class ShopPhoneRecognizer(PhoneRecognizer):  # type: ignore[misc]
        def analyze(
            self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
        ) -> list[RecognizerResult]:
            results = super().analyze(text, entities, nlp_artifacts)  # type: ignore[arg-type]
            return [r for r in results if plausible_phone(text, r.start, r.end)]

    return ShopPhoneRecognizer(supported_regions=tuple(regions))
