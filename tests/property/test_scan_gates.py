"""The scanner's gates drop an entity from a text's request only when no recognizer could find it
there: whatever Presidio's analyzer finds in a text when asked for every entity, ``Gates.candidates``
lets through (hypothesis, against the installed recognizers). And a pattern recognizer that asks its
patterns first (``QuickPatterns``) finds what Presidio's own pass finds.

The texts mix groups of digits (ASCII and Arabic-Indic), the separators ids are written with (spaces,
dashes, dots, colons, slashes, line breaks, tabs), letters, and national ids, phone and card numbers,
emails and addresses as they are written in the wild.
"""

from __future__ import annotations

import sys

import regex
from hypothesis import given, settings
from hypothesis import strategies as st
from presidio_analyzer import PatternRecognizer, RecognizerResult

from stream_anon.detection.gates import HAND_GATES
from stream_anon.detection.recognizers import LANGUAGE, DocArtifacts, QuickPatterns
from stream_anon.detection.scanner import DEFAULT_MODEL, engine_for
from stream_anon.detection.settings import NATIONAL_IDS

ENGINE = engine_for(DEFAULT_MODEL)
EVERY_ENTITY = sorted(ENGINE.supported_entities)

SAMPLES = [
    "131052-308T", "010101A123N", "X1234567L", "12345678Z", "RSSMRA85T10A562S", "RSSMRAURTMLARSNL",
    "44051401359", "19121212-1212", "S1234567D", "2234 56789 1", "123 456 782", "046 454 286",
    "1234 5678 9012", "943 476 5919", "1101700230705", "10000000146", "12345678911", "8001015009087",
    "078-05-1120", "+44 20 7946 0958", "(555) 010-4477", "4111 1111 1111 1111", "DE89 3704 0044 0532 0130 00",
    "192.168.0.1", "fe80::1", "ann@example.com", "ann at example dot com", "www.example.org",
    "Dr. Anna Smith", "Hi Anna,", "my colleague Anna Smith", "Mrs Ortiz", "thanks, Bo",
]  # fmt: skip
SEPARATORS = [" ", "-", ".", ":", "/", "\n", "\t", "(", ")", "+", "", ", "]
LETTERS = ["A", "x", "T", "S", "M", "L", "de", "GB", "call", "id", "at", "dot", "@", "K", "ſ"]

digits = st.text(alphabet="0123456789", min_size=1, max_size=13)
indic_digits = st.text(alphabet="٠١٢٣٤٥٦٧٨٩", min_size=1, max_size=12)
pieces = st.one_of(
    digits, indic_digits, st.sampled_from(SEPARATORS), st.sampled_from(LETTERS), st.sampled_from(SAMPLES)
)
texts = st.lists(pieces, min_size=1, max_size=8).map("".join)


def found_by_the_analyzer(text: str) -> set[str]:
    """Entities Presidio's analyzer finds in ``text`` with every entity asked for, at any score."""
    artifacts = DocArtifacts(ENGINE.nlp.make_doc(text), [], ENGINE.nlp_engine, 0.85)
    results = ENGINE.analyzer.analyze(
        text, LANGUAGE, entities=EVERY_ENTITY, nlp_artifacts=artifacts, score_threshold=0.0
    )
    return {result.entity_type for result in results}


@settings(max_examples=600, deadline=None)
@given(texts)
def test_the_gates_let_through_every_entity_the_analyzer_finds(text: str) -> None:
    assert found_by_the_analyzer(text) <= set(ENGINE.gates.candidates(text, EVERY_ENTITY))


def test_ids_written_with_a_letter_colons_or_line_breaks_reach_their_recognizers() -> None:
    # Each was dropped by the gate before: it looked for a run of seven digits grouped by spaces,
    # tabs, dots, dashes, slashes or brackets.
    for text, entity in [
        ("my id is 010101A123N", "FI_PERSONAL_IDENTITY_CODE"),
        ("aadhaar 2345:6789:0124", "IN_AADHAAR"),
        ("tfn\n123\n456\n782", "AU_TFN"),
    ]:
        assert entity in found_by_the_analyzer(text), text
        assert entity in ENGINE.gates.candidates(text, EVERY_ENTITY), text


def test_a_text_without_digits_or_an_at_is_asked_for_no_number_id_or_email() -> None:
    # the gates do drop entities: without that the property above would hold trivially
    asked = set(ENGINE.gates.candidates("the app froze again", EVERY_ENTITY))
    numbers = {"PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "EMAIL_ADDRESS", "IP_ADDRESS"}
    assert asked.isdisjoint(NATIONAL_IDS | numbers)
    assert "PERSON" in asked


def test_the_fiscal_code_gate_takes_every_character_the_fiscal_code_pattern_takes() -> None:
    # Presidio matches the code's [A-Z] and [\d] ignoring case: a few letters beyond ASCII too
    (fiscal,) = ENGINE.analyzer.registry.get_recognizers(LANGUAGE, entities=["IT_FISCAL_CODE"])
    assert isinstance(fiscal, PatternRecognizer)
    one = regex.compile(r"[A-Z\d]", fiscal.global_regex_flags)
    taken = [chr(c) for c in range(sys.maxunicode + 1) if one.fullmatch(chr(c))]
    assert {"K", "ſ", "٣"} <= set(taken)
    gate = HAND_GATES["IT_FISCAL_CODE"]
    assert [c for c in taken if not gate(c * 16)] == []
    assert not gate("RSSMRA85T10A562") and not gate("RSSMRA85T10A562 S")


QUICK = [r for r in ENGINE.analyzer.registry.recognizers if isinstance(r, QuickPatterns)]


def _found(results: list[RecognizerResult]) -> list[tuple[str, int, int, float]]:
    return [(r.entity_type, r.start, r.end, r.score) for r in results]


@settings(max_examples=400, deadline=None)
@given(texts)
def test_a_pattern_recognizer_asking_its_patterns_first_finds_what_presidio_finds(text: str) -> None:
    for recognizer in QUICK:
        entities = list(recognizer.supported_entities)
        stock = PatternRecognizer.analyze(recognizer, text, entities)
        assert _found(recognizer.analyze(text, entities)) == _found(stock), recognizer.name


def test_the_person_patterns_and_the_national_ids_ask_their_patterns_first() -> None:
    names = {r.name for r in QUICK}
    assert {"person after a title", "EsNifRecognizer", "CreditCardRecognizer"} <= names
    assert "IbanRecognizer" not in names  # it overrides analyze: it may find what its pattern does not
    title = next(r for r in QUICK if r.name == "person after a title")
    assert _found(title.analyze("the app froze", ["PERSON"])) == []
    assert _found(title.analyze("ask Dr. Anna Smith", ["PERSON"]))
