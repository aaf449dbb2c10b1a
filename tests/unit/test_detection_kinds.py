"""Issue 15: each kind of value that free text may hold about someone the record does not know is
caught by the scan, each kind of ordinary word survives it, and the leak verifier stops what a scan
left behind (fail closed).

The sentences are written here, not drawn from the evaluation corpus (eval/detection), which measures
rates; these prove each rule works.
"""

from __future__ import annotations

import copy
from typing import Any

import fastavro
import pytest

from stream_anon.detection.scanner import Scanner
from stream_anon.detection.spans import replace_spans
from stream_anon.verify import Verifier

# (kind, text, the value that must not survive). The record knows none of these values.
CAUGHT = [
    ("name", "Please forward this to Francesca North in accounting.", "Francesca North"),
    ("name", "The parcel was signed for by Marek Wiśniewski, not by me.", "Marek Wiśniewski"),
    ("name in lower case", "I already spoke to zeynep hübel about the refund.", "zeynep hübel"),
    ("name in lower case", "my neighbour brenda cardoso got my package", "brenda cardoso"),
    ("name in Han script", "My colleague 木村 陽一 will call you back.", "木村 陽一"),
    ("name in Devanagari", "Please ask मोहना रोद्रिगुएस to check the invoice.", "मोहना रोद्रिगुएस"),
    ("name in Arabic script", "The agent ابتهاج الخطيب closed my ticket.", "ابتهاج الخطيب"),
    (
        "street address",
        "Please ship it to 7631 Johnson Village Suite 690 instead.",
        "7631 Johnson Village Suite 690",
    ),
    ("street address", "Meine neue Adresse ist Wesackstraße 26.", "Wesackstraße 26"),
    ("street address", "Merci de livrer au 8, avenue Manon Gillet.", "8, avenue Manon Gillet"),
    ("street address", "We live at ul. Długa 15 since March.", "ul. Długa 15"),
    ("obfuscated email", "Write to anna at example dot com for the forms.", "anna at example dot com"),
    ("obfuscated email", "Her contact is anna(at)example.com today.", "anna(at)example.com"),
    ("obfuscated email", "mail anna [at] gmail [dot] com please", "anna [at] gmail [dot] com"),
    ("date of birth", "I was born on 03/04/1947 and the form rejects it.", "03/04/1947"),
    ("date of birth", "My date of birth is 5 October 1950.", "5 October 1950"),
    ("date of birth", "Mein Geburtsdatum ist der 05.10.1950.", "05.10.1950"),
    ("date of birth", "Je suis né le 3 avril 1951.", "3 avril 1951"),
    (
        "phone with an extension",
        "Call my landlord on 001-598-621-4104x327 after six.",
        "001-598-621-4104x327",
    ),
    ("phone with an extension", "Her number is +90(101)963-7652x477.", "+90(101)963-7652x477"),
    ("local phone", "You can text 17643783307 instead.", "17643783307"),
    ("card of 15 digits (JCB)", "Please refund to 213175827947352.", "213175827947352"),
    ("card of 15 digits (Amex)", "I paid with 3782 822463 10005 but got nothing.", "3782 822463 10005"),
    ("card grouped with dots", "The charge went to card 4111.1111.1111.1111 twice.", "4111.1111.1111.1111"),
    ("national id (ES NIF)", "My ID number is 47173194X.", "47173194X"),
    ("national id (IT fiscal code)", "For verification: GZZPTZ76A06F580B.", "GZZPTZ76A06F580B"),
    ("national id (PL PESEL)", "For verification: 40060246967.", "40060246967"),
    ("email", "Send the receipt to jane.doe@example.org now.", "jane.doe@example.org"),
    ("IBAN", "Refund to IBAN DE89 3704 0044 0532 0130 00 please.", "DE89 3704 0044 0532 0130 00"),
    ("IP address", "The login came from 203.0.113.77, not from me.", "203.0.113.77"),
    ("profile URL", "My profile is https://github.com/jdoe-dev if you want to check.", "jdoe-dev"),
]

# (kind, text, what must survive).
KEPT = [
    ("error code", "The app shows code 2207 on start.", "code 2207"),
    ("error code", "I keep getting error E-4021.", "E-4021"),
    ("version", "Since update 15.1.7 it crashes.", "15.1.7"),
    ("amount", "I was charged $1,299.00 instead of €45,50.", "$1,299.00 instead of €45,50"),
    ("product name", "The Teal Falcon X200 stopped charging.", "Teal Falcon X200"),
    ("product name", "I returned the Galaxy Tab last week.", "Galaxy Tab"),
    ("ordinary capitalized words", "Customer Service never answered on Monday.", "Customer Service"),
    ("ordinary capitalized words", "Nobody came on Friday.", "Friday"),
    ("order id", "Order MA-31245 is missing.", "Order MA-31245"),
    ("date that is not a birth date", "The delivery on 2024-03-15 never came.", "2024-03-15"),
    (
        "lower-case words after a person word",
        "I spoke to tech support and the accounting department.",
        "tech support",
    ),
]


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner()


@pytest.mark.parametrize(("kind", "text", "value"), CAUGHT, ids=[f"{k}: {v}" for k, _, v in CAUGHT])
def test_each_kind_of_value_is_caught(scanner: Scanner, kind: str, text: str, value: str) -> None:
    [spans] = scanner.detect_batch([text], [[("PERSON", "Someone Else"), ("EMAIL_ADDRESS", "x@example.net")]])
    sanitized = replace_spans(text, spans, "tag")
    assert value not in sanitized, f"{kind} survived: {sanitized}"
    for word in value.replace(",", " ").split():
        if len(word) > 2 and word.lower() not in ("suite", "avenue", "dot", "com", "at"):
            assert word not in sanitized, f"{kind}: {word!r} survived in {sanitized}"


@pytest.mark.parametrize(("kind", "text", "kept"), KEPT, ids=[f"{k}: {v}" for k, _, v in KEPT])
def test_each_kind_of_keeper_survives(scanner: Scanner, kind: str, text: str, kept: str) -> None:
    [spans] = scanner.detect_batch([text], [[]])
    assert kept in replace_spans(text, spans, "tag"), kind


SCHEMA = {
    "type": "record",
    "name": "Note",
    "fields": [{"name": "note", "type": "string"}, {"name": "product", "type": "string"}],
}


class Plan:
    generated_paths: frozenset[str] = frozenset()
    pii_getters: None = None  # lists its values only (pii_values), does not say where it reads them
    parsed_derived: Any = fastavro.parse_schema(copy.deepcopy(SCHEMA))

    def pii_values(self, record: dict[str, Any]) -> list[tuple[str, str, str]]:
        return []


def test_the_verifier_stops_what_a_narrow_scan_left(scanner: Scanner) -> None:
    # A scan asked only for names leaves the obfuscated email and the birth date in the text: the
    # verifier runs the same detectors for those and stops the record.
    text = "Write to anna at example dot com, I was born on 03/04/1947."
    [spans] = scanner.detect_batch([text], [[]], entities=frozenset({"PERSON"}))
    left = replace_spans(text, spans, "tag")
    assert "anna at example dot com" in left
    result = Verifier().check(Plan(), {}, {"note": left, "product": "Teal Falcon X200"})
    assert sorted(leak.entity for leak in result.leaks) == ["DATE_OF_BIRTH", "EMAIL_ADDRESS"]
    redacted = Verifier("redact").check(Plan(), {}, {"note": left, "product": "x"}).record
    assert redacted["note"] == "Write to <EMAIL_ADDRESS>, I was born on <DATE_OF_BIRTH>."


def test_the_verifier_leaves_structured_text_that_only_free_text_rules_would_take() -> None:
    # Address and name heuristics read English free text; a kept product or shop address is not a leak.
    record = {"note": "code 2207, version 3.12.1", "product": "Store at 7631 Johnson Village, 木村 Plaza"}
    assert Verifier().check(Plan(), {}, record).leaks == []
