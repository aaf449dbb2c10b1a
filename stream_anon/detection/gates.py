"""Which entities a text can feed, decided before Presidio runs a recognizer for them.

Presidio's analyzer costs about 15-30 us per recognizer it asks, whatever the text holds, and most
texts hold none of most entities. ``Gates.candidates`` drops an entity from a text's request only when
no recognizer of it can match, by two tests:

* a cheap test per entity (``HAND_GATES``) that every match of its recognizers passes: a run of seven
  digits for phone and card numbers, three digits in a row for a national id. Entities with the same
  test share it, and it is evaluated once per text;
* for an entity whose every recognizer is a plain Presidio ``PatternRecognizer`` (its results come only
  from matches of its own patterns), those patterns themselves, compiled as Presidio compiles them: if
  none finds a match, the recognizer would return nothing.

``tests/property/test_scan_gates.py`` holds both to the installed recognizers: whatever the analyzer
finds in a text, ``candidates`` lets through.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

import regex
from presidio_analyzer import EntityRecognizer, PatternRecognizer

from stream_anon.detection.recognizers import finds_only_its_patterns, patterns_of
from stream_anon.detection.settings import NATIONAL_IDS

__all__ = ["HAND_GATES", "Gates", "has_word"]

_NUMBER = re.compile(r"\d[\d \t.\-/()]{5,}\d")
_THREE_DIGITS = re.compile(r"\d{3}")
_IP = re.compile(r"\d\.\d|[0-9A-Fa-f]?:[0-9A-Fa-f]*:")
_WORD = re.compile(r"[^\W\d_]{2}")
# Presidio's fiscal-code pattern is 16 of [A-Z\d] matched ignoring case, which takes a few letters
# beyond ASCII (the Kelvin sign, the long s). Sixteen word characters by the same module's Unicode
# tables take all of those, and the engine tests one class by table lookup: about three times faster.
_SIXTEEN_WORD_CHARACTERS = regex.compile(r"\w{16}")
_SPELLED_AT = re.compile(r"\bat\b|\(at\)|\[at\]|\{at\}|\bdot\b", re.IGNORECASE)


def has_number(text: str) -> bool:
    """A run of seven or more digits, possibly grouped: what a phone, card, IBAN or SSN needs."""
    return _NUMBER.search(text) is not None


def has_word(text: str) -> bool:
    """Two letters in a row: a text without one has no name for NER to find."""
    return _WORD.search(text) is not None


def _has_ip(text: str) -> bool:
    return _IP.search(text) is not None


def _has_at(text: str) -> bool:
    return "@" in text or _SPELLED_AT.search(text) is not None


def _has_dot(text: str) -> bool:
    return "." in text


def _has_three_digits(text: str) -> bool:
    return _THREE_DIGITS.search(text) is not None


def _has_sixteen_word_characters(text: str) -> bool:
    return _SIXTEEN_WORD_CHARACTERS.search(text) is not None


HAND_GATES: dict[str, Callable[[str], bool]] = {
    "EMAIL_ADDRESS": _has_at,
    "PHONE_NUMBER": has_number,
    "CREDIT_CARD": has_number,
    "IBAN_CODE": has_number,
    "IP_ADDRESS": _has_ip,
    "URL": _has_dot,
    "US_SSN": has_number,
    # Every other national id has a group of at least three digits (a Finnish code may have a letter
    # where the others have a dash, an Aadhaar number colons between its groups); the fiscal code may
    # have none.
    **dict.fromkeys(NATIONAL_IDS - {"US_SSN", "IT_FISCAL_CODE"}, _has_three_digits),
    "IT_FISCAL_CODE": _has_sixteen_word_characters,
}


class Gates:
    """The hand-written gates, and the pattern gates of ``recognizers``."""

    def __init__(self, recognizers: Iterable[EntityRecognizer]) -> None:
        self.patterns = pattern_gates(recognizers)

    def candidates(self, text: str, wanted: Sequence[str]) -> list[str]:
        """The entities of ``wanted`` (in its order) that some recognizer may find in ``text``."""
        passed: dict[Callable[[str], bool], bool] = {}
        found = []
        for entity in wanted:
            gate = HAND_GATES.get(entity)
            if gate is not None:
                open_ = passed.get(gate)
                if open_ is None:
                    open_ = passed[gate] = gate(text)
                if not open_:
                    continue
            patterns = self.patterns.get(entity)
            if patterns is not None and not any(p.search(text) for p in patterns):
                continue
            found.append(entity)
        return found


def pattern_gates(recognizers: Iterable[EntityRecognizer]) -> dict[str, tuple[regex.Pattern[str], ...]]:
    """For each entity that only plain pattern recognizers find, the patterns of those recognizers."""
    gates: dict[str, list[regex.Pattern[str]]] = {}
    ungated: set[str] = set()
    for recognizer in recognizers:
        for entity in recognizer.supported_entities:
            if finds_only_its_patterns(recognizer):
                assert isinstance(recognizer, PatternRecognizer)
                gates.setdefault(entity, []).extend(patterns_of(recognizer))
            else:
                ungated.add(entity)
    return {entity: tuple(patterns) for entity, patterns in gates.items() if entity not in ungated}
