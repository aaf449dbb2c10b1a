"""Record-aware detection: the raw values of a record's own ``"pii"`` fields, found in its free text."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from stream_anon.detection.config import RecordAwareConfig
from stream_anon.detection.text import (
    DIGIT_RUN,
    MIN_NUMBER_DIGITS,
    MIN_VALUE_LENGTH,
    NUMBER_ENTITIES,
    PHONE_NUMBER,
    digits_of,
    fold,
    normalized_text,
)

_DIGITS = re.compile(r"\d+")
# Words as names are written: letters and digits, with apostrophes inside ("O'Connor").
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
# Runs of letters and digits, with single spaces or dashes between them (an IBAN in groups of four).
_ALNUM_RUN = re.compile(r"[^\W_]+(?:[ \t\-][^\W_]+)*")
_ALNUM = re.compile(r"[^\W_]+")
# What may stand between the words of a name, and what a compact value (an IBAN in groups) is read without.
_SPACES_AND_DASHES = re.compile(r"[\s\-]+")


class RecordAware:
    """Finds the raw values of a record's ``"pii"`` fields in its free text.

    Names are searched whole and word by word (first or last name alone), ignoring case and accents, as
    whole words; phone, card and SSN numbers digit by digit whatever their punctuation (a phone number
    also without its country code, or with a trunk ``0``); values of letters, digits, spaces and dashes
    (an IBAN, a device id) ignoring case, spaces and dashes; anything else (an email) as written, ignoring
    case, as a whole word. Nothing is compiled per record: a worker sees a new name in every record.
    """

    def __init__(self, config: RecordAwareConfig) -> None:
        self.config = config

    def find(self, text: str, known: Sequence[tuple[str, str]]) -> list[tuple[int, int, str]]:
        """``(start, end, entity)`` of every occurrence of a known value in ``text``."""
        if not known or not text:
            return []
        names: list[tuple[tuple[str, ...], str]] = []  # (folded words of a name or of one part, entity)
        numbers: list[tuple[str, str]] = []  # (digits, entity)
        compact: list[tuple[str, str]] = []  # (upper-case letters and digits, entity)
        literal: list[tuple[str, str]] = []  # (lower-case value, entity)
        config = self.config
        for entity, raw in known:
            value = normalized_text(raw.strip())
            if entity in NUMBER_ENTITIES:
                digits = digits_of(value)
                if len(digits) >= MIN_NUMBER_DIGITS:
                    numbers.append((digits, entity))
            elif entity in config.name_entities:
                words = tuple(fold(m[0]) for m in _WORD.finditer(value))
                if len(words) > 1:
                    names.append((words, entity))
                names.extend(
                    ((w,), entity)
                    for w in words
                    if len(w) >= config.min_name_part and w not in config.name_particles
                )
            elif len(value) >= MIN_VALUE_LENGTH:
                squeezed = _SPACES_AND_DASHES.sub("", value)
                if squeezed.isalnum():
                    compact.append((squeezed.upper(), entity))
                else:
                    literal.append((value.lower(), entity))
        found: list[tuple[int, int, str]] = []
        # A record's own values are rarely in its text: a substring test each spares tokenizing it.
        if names:
            names = _names_maybe_in(text, names)
            if names:
                found.extend(_find_names(text, names))
        if numbers:
            found.extend(self._find_numbers(text, numbers))
        if compact:
            compact = _compact_maybe_in(text, compact)
            if compact:
                found.extend(_find_compact(text, compact))
        if literal:
            found.extend(_find_literal(text, literal))
        return found

    def _find_numbers(self, text: str, numbers: list[tuple[str, str]]) -> Iterator[tuple[int, int, str]]:
        for run in DIGIT_RUN.finditer(text):
            groups = [(m.start() + run.start(), m.end() + run.start()) for m in _DIGITS.finditer(run[0])]
            i = 0
            while i < len(groups):
                hit = self._longest_at(text, groups, i, numbers)
                if hit is None:
                    i += 1
                    continue
                j, entity = hit
                yield _with_prefix(text, groups[i][0], groups[j][1]), groups[j][1], entity
                i = j + 1

    def _longest_at(
        self, text: str, groups: list[tuple[int, int]], i: int, numbers: list[tuple[str, str]]
    ) -> tuple[int, str] | None:
        """The last group ``j`` such that groups ``i..j`` spell a known number, and its entity."""
        digits = ""
        best: tuple[int, str] | None = None
        for j in range(i, len(groups)):
            digits += text[groups[j][0] : groups[j][1]]
            for known, entity in numbers:
                if self._same_number(digits, known, entity):
                    best = (j, entity)
        return best

    def _same_number(self, written: str, known: str, entity: str) -> bool:
        if written == known:
            return True
        if entity != PHONE_NUMBER:
            return False
        # "+44 20 7946 0958", "0044 20 7946 0958" and "020 7946 0958" are one number: compare without
        # leading zeros, allowing a country code of up to three digits on either side.
        a, b = written.lstrip("0"), known.lstrip("0")
        if min(len(a), len(b)) < MIN_NUMBER_DIGITS or abs(len(a) - len(b)) > 3:
            return False
        return a.endswith(b) or b.endswith(a)


def _names_maybe_in(text: str, names: list[tuple[tuple[str, ...], str]]) -> list[tuple[tuple[str, ...], str]]:
    """The names whose every part is in the folded text: a superset of those ``_find_names`` finds, as
    folding works character by character (no context, unlike ``lower`` with a final sigma), so a word's
    fold is a substring of the text's."""
    folded = fold(text)
    return [n for n in names if all(part in folded for part in n[0])]


def _compact_maybe_in(text: str, values: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The values in the upper-cased text without spaces and dashes: a superset of those
    ``_find_compact`` finds, which spells them across words joined by spaces or dashes."""
    squeezed = _SPACES_AND_DASHES.sub("", text).upper()
    return [v for v in values if v[0] in squeezed]


def _find_names(text: str, names: list[tuple[tuple[str, ...], str]]) -> Iterator[tuple[int, int, str]]:
    """Occurrences of whole names or single parts, as whole words; the longest name at a word wins."""
    words = [(m.start(), m.end(), fold(m[0])) for m in _WORD.finditer(text)]
    # A name can start only at its first part: each word looks up the names that start with it, longest
    # first (sorted is stable, so names of one length keep their order).
    starting: dict[str, list[tuple[tuple[str, ...], str]]] = {}
    for name in sorted(names, key=lambda n: len(n[0]), reverse=True):
        starting.setdefault(name[0][0], []).append(name)
    i = 0
    while i < len(words):
        for parts, entity in starting.get(words[i][2], ()):
            n = len(parts)
            if i + n <= len(words) and all(
                words[i + k][2] == parts[k]
                and _SPACES_AND_DASHES.fullmatch(text[words[i + k - 1][1] : words[i + k][0]])
                for k in range(1, n)
            ):
                yield words[i][0], words[i + n - 1][1], entity
                i += n
                break
        else:
            i += 1


def _find_compact(text: str, values: list[tuple[str, str]]) -> Iterator[tuple[int, int, str]]:
    """Occurrences of values compared without case, spaces and dashes, starting and ending at words."""
    for run in _ALNUM_RUN.finditer(text):
        groups = [(m.start() + run.start(), m.end() + run.start()) for m in _ALNUM.finditer(run[0])]
        upper = [text[a:b].upper() for a, b in groups]
        i = 0
        while i < len(groups):
            for value, entity in values:
                j, spelled = i, ""
                while j < len(groups) and value.startswith(spelled + upper[j]):
                    spelled += upper[j]
                    if spelled == value:
                        break
                    j += 1
                if spelled == value:
                    yield groups[i][0], groups[j][1], entity
                    i = j
                    break
            i += 1


def _find_literal(text: str, values: list[tuple[str, str]]) -> Iterator[tuple[int, int, str]]:
    """Occurrences of values as written, ignoring case, not inside a longer word."""
    lowered = text.lower()
    if len(lowered) != len(text):  # a few letters change length with their case ("İ")
        lowered = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
    for value, entity in values:
        start = lowered.find(value)
        while start >= 0:
            end = start + len(value)
            if not _inside_word(text, start, end):
                yield start, end, entity
            start = lowered.find(value, end)


def _inside_word(text: str, start: int, end: int) -> bool:
    return (start > 0 and text[start - 1].isalnum() and text[start].isalnum()) or (
        end < len(text) and text[end].isalnum() and text[end - 1].isalnum()
    )


def _with_prefix(text: str, start: int, end: int) -> int:
    """Start of a number with the ``+`` or ``(`` written in front of it."""
    if start > 0 and (text[start - 1] == "+" or (text[start - 1] == "(" and ")" in text[start:end])):
        return start - 1
    return start
