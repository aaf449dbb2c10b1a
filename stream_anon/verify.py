"""The in-line leak check: every string of a sanitized record, before it is produced (fail closed).

Strings are the record's string values and map keys, and its bytes and fixed values read as UTF-8 text
(``walk``); numbers, booleans and enum symbols are not text and are not read.

Two checks run on each record:

* the validated detectors (``stream_anon.detection.validated``) over every string, except at paths
  whose values a rule produced on purpose (``plan.generated_paths``: pseudonym tokens, IP prefixes, masks);
* an exact search for the raw values of the same record's ``"pii"`` fields over every string, generated
  ones included, so a value that slipped through any path is caught. Phone, card and SSN values are
  compared by their digits (a reformatted number is the same number), everything else ignoring case and
  only as a whole word ("Anna" is not found in "Annabelle"). Values shorter than four characters (seven
  digits) are not searched: they would match by chance. All values are searched in one pass over the
  text (``detection.exact``), so the cost grows linearly with a record's values, not with their square.
  A compiled plan says where its raw values are (``pii_getters``): the screen then reads what it seeks
  of them straight from the record (``sought_function``), and lists them only for the full check.

Both read the strings as the scan does, normalized (``detection.text.normalize``: NFKC, zero-width
characters removed), so a full-width or zero-width-split copy of a value is the value.

A hit is a ``Leak(entity, path)``; with ``on_leak="redact"`` the span becomes ``<ENTITY>`` in place and the
record goes on, otherwise the caller dead-letters it. Leaks never carry the value.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Callable, Iterable, Sequence, Set
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from stream_anon.detection.contextual import VERIFIER
from stream_anon.detection.exact import DigitNeedles, WordNeedles
from stream_anon.detection.spans import Span, replace_spans
from stream_anon.detection.text import (
    MIN_NUMBER_DIGITS,
    MIN_VALUE_LENGTH,
    NUMBER_ENTITIES,
    SEPARATOR,
    Normalized,
    Run,
    digit_runs,
    digits_of,
    normalize,
    normalized_text,
)
from stream_anon.detection.validated import Detector, DetectorSet
from stream_anon.schema.codegen import generate, literal
from stream_anon.schema.values import Getter, collect_values, read_lines
from stream_anon.walk import (
    MAP_KEY,
    Leaf,
    Screen,
    Walker,
    compile_screen,
    compile_walker,
    replace_leaf,
    walk_untyped,
)

OnLeak = Literal["dead_letter", "redact"]

MIN_EXACT_LENGTH = MIN_VALUE_LENGTH


class VerifiablePlan(Protocol):
    """What the verifier reads from a compiled plan (``stream_anon.rules.Plan``)."""

    @property
    def parsed_derived(self) -> Any: ...

    @property
    def generated_paths(self) -> Set[str]: ...

    @property
    def pii_getters(self) -> Sequence[Getter] | None:
        """Where the ``"pii"`` values are read (``schema.values``); None for a plan that only lists them."""
        ...

    def pii_values(self, record: dict[str, Any]) -> list[tuple[str, str, str]]: ...


@dataclass(frozen=True, slots=True)
class Leak:
    """PII found in a sanitized record: what kind and in which field, never the value."""

    entity: str
    path: str


@dataclass(slots=True)
class VerifyResult:
    """``leaks`` found (distinct, in field order) and the record, redacted in place under ``redact``."""

    leaks: list[Leak]
    record: dict[str, Any]

    @property
    def clean(self) -> bool:
        return not self.leaks


# A raw value to look for: (entity, casefolded text or digits, compared by digits, value as written).
_Needle = tuple[str, str, bool, str]
# What the screen looks for of a record's raw values: (casefolded texts, digits); see ``_sought``.
Sought = tuple[list[str], list[str]]
SoughtOf = Callable[[dict[str, Any], int], Sought]
# Where a leaf leaks: (leaf index, start, end, entity).
_Hit = tuple[int, int, int, str]


class _Joined:
    """Some leaves' texts joined by ``SEPARATOR`` and normalized, and where each leaf begins."""

    __slots__ = ("indexes", "norm", "starts", "text")

    def __init__(self, leaves: list[Leaf], indexes: list[int]) -> None:
        texts = [leaves[i][1] for i in indexes]
        self.norm = normalize(SEPARATOR.join(texts))
        self.text = self.norm.text
        self.indexes = indexes
        self.starts = [0]
        for text in texts[:-1]:
            self.starts.append(self.starts[-1] + len(text) + 1)

    def place(self, start: int, end: int) -> tuple[int, int, int]:
        """The leaf holding ``text[start:end]`` and the span in that leaf's own string."""
        start, end = self.norm.span(start, end)
        part = bisect.bisect_right(self.starts, start) - 1
        base = self.starts[part]
        return self.indexes[part], start - base, end - base


class Verifier:
    """Checks sanitized records against their raw form; see the module docstring."""

    _WALKER_CACHE_LIMIT = 256

    def __init__(
        self,
        on_leak: OnLeak = "dead_letter",
        *,
        detectors: Iterable[Detector] = VERIFIER.detectors,
        min_exact_length: int = MIN_EXACT_LENGTH,
    ) -> None:
        if on_leak not in ("dead_letter", "redact"):
            raise ValueError(f"on_leak must be 'dead_letter' or 'redact', not {on_leak!r}")
        self.on_leak = on_leak
        self._detectors = DetectorSet(detectors)
        self._min_exact_length = min_exact_length
        # Keyed by the schema object's id; the object is kept so its id cannot be reused while cached.
        self._walkers: dict[int, tuple[Any, Walker]] = {}
        self._screens: dict[
            tuple[int, int, int], tuple[Any, Set[str], Any, tuple[Screen, SoughtOf | None] | None]
        ] = {}
        # Strings the detectors found nothing in, so that a string repeated across records (a country, an
        # app version, a category) is read once. The detectors are a function of the string alone and
        # find nothing across the separator (``detection.text.SEPARATOR``), so a string clean in one
        # record is clean in any. Bounded: forgotten all at once when full; long strings (free text,
        # rarely repeated) are not kept.
        self._clean: set[str] = set()

    def check(self, plan: VerifiablePlan, raw: dict[str, Any], sanitized: dict[str, Any]) -> VerifyResult:
        # The screen: the same detectors and the same substring tests as the full check below, on the
        # record's strings joined, without building leaves. Nearly every record is clean, and a clean
        # record passes every test of the full check's too; anything the screen flags goes to the full
        # check, which finds (and places) what it is.
        screen = self._screen(plan)
        if screen is not None:
            strings, sought_of = screen
            if sought_of is None:
                sought = _sought(plan.pii_values(raw), self._min_exact_length)
            else:
                sought = sought_of(raw, self._min_exact_length)
            if not self._screen_flags(strings(sanitized), sought):
                return VerifyResult([], sanitized)
        return self._full_check(plan, sanitized, self._needles(plan.pii_values(raw)))

    def _screen_flags(self, strings: tuple[list[str], list[str]], sought: Sought) -> bool:
        """Whether the full check could find anything: a detector finding in the checked strings not yet
        known clean, or a raw value in any string (``_could_be_in``): the full check's own tests, on the
        strings joined."""
        checked, produced = strings
        clean = self._clean
        unknown = [s for s in checked if s not in clean]
        if unknown:
            if self._detectors.finds_any(normalized_text(SEPARATOR.join(unknown))):
                return True
            if len(clean) + len(unknown) > _CLEAN_LIMIT:
                clean.clear()
            for string in unknown:
                if len(string) <= _CLEAN_MAX_LENGTH:
                    clean.add(string)
        if not sought[0] and not sought[1]:
            return False
        return _could_be_in(sought, normalized_text(SEPARATOR.join(checked + produced)))

    def _full_check(self, plan: VerifiablePlan, sanitized: dict[str, Any], needles: _Needles) -> VerifyResult:
        leaves = self._walker(plan.parsed_derived)(sanitized)
        if not leaves:
            return VerifyResult([], sanitized)
        generated = plan.generated_paths
        detected: list[int] = []
        produced: list[int] = []
        for index, (path, _, _, _, how) in enumerate(leaves):
            (produced if path in generated and how != MAP_KEY else detected).append(index)
        hits: list[_Hit] = []
        checked = _Joined(leaves, detected)
        runs = digit_runs(checked.text)
        for finding in self._detectors.find(checked.text, runs):
            index, start, end = checked.place(finding.start, finding.end)
            hits.append((index, start, end, finding.entity))
        if needles:
            _search_needles(needles, leaves, checked, runs, hits)
            if produced:
                _search_needles(needles, leaves, _Joined(leaves, produced), None, hits)
        if not hits:
            return VerifyResult([], sanitized)
        hits.sort()
        leaks = list(dict.fromkeys(Leak(entity, leaves[index][0]) for index, _, _, entity in hits))
        if self.on_leak == "redact":
            _redact(leaves, hits)
        return VerifyResult(leaks, sanitized)

    def _screen(self, plan: VerifiablePlan) -> tuple[Screen, SoughtOf | None] | None:
        """The plan's screen and its function listing what to look for of a raw record (None: derive it
        from ``pii_values``); None when the derived schema cannot be screened (none, or one the walker
        reads by its values): the full check then reads every record."""
        schema = plan.parsed_derived
        if schema is None:
            return None
        getters = plan.pii_getters
        key = (id(schema), id(plan.generated_paths), id(getters))
        cached = self._screens.get(key)
        if (
            cached is not None
            and cached[0] is schema
            and cached[1] is plan.generated_paths
            and cached[2] is getters
        ):
            return cached[3]
        if len(self._screens) >= self._WALKER_CACHE_LIMIT:
            self._screens.clear()
        strings = compile_screen(schema, plan.generated_paths)
        screen = None
        if strings is not None:
            screen = (strings, None if getters is None else sought_function(getters))
        # The objects are kept with the functions so that their ids cannot be reused while cached.
        self._screens[key] = (schema, plan.generated_paths, getters, screen)
        return screen

    def _needles(self, values: list[tuple[str, str, str]]) -> _Needles:
        return _Needles(values, self._min_exact_length)

    def _walker(self, schema: Any) -> Walker:
        if schema is None:
            return walk_untyped
        cached = self._walkers.get(id(schema))
        if cached is not None and cached[0] is schema:
            return cached[1]
        if len(self._walkers) >= self._WALKER_CACHE_LIMIT:
            self._walkers.clear()
        walker = compile_walker(schema)
        self._walkers[id(schema)] = (schema, walker)
        return walker


_CLEAN_LIMIT = 4096
_CLEAN_MAX_LENGTH = 64


class _Needles:
    """A record's raw values, indexed for one pass over the text: each sought text or digits (the first
    value giving it wins) with its entity and the value as written.

    Nothing is indexed until the full check needs it: a clean record, nearly every one, is passed by
    ``_could_be_in`` on its raw values alone."""

    __slots__ = ("_digits", "_found_", "_min_length", "_values", "_words")

    def __init__(self, values: list[tuple[str, str, str]], min_length: int) -> None:
        self._values = values
        self._min_length = min_length
        self._found_: dict[tuple[str, bool], tuple[str, str]] | None = None
        self._words: WordNeedles | None = None
        self._digits: DigitNeedles | None = None

    @property
    def _found(self) -> dict[tuple[str, bool], tuple[str, str]]:
        if self._found_ is None:
            self._found_ = {}
            for entity, _path, value in self._values:
                needle = _needle(entity, value, self._min_length)
                if needle is not None:
                    self._found_.setdefault((needle[1], needle[2]), (needle[0], needle[3]))
        return self._found_

    def __bool__(self) -> bool:
        return bool(self._found)

    @property
    def words(self) -> WordNeedles:
        if self._words is None:
            self._words = WordNeedles(sought for sought, by_digits in self._found if not by_digits)
        return self._words

    @property
    def digits(self) -> DigitNeedles:
        if self._digits is None:
            self._digits = DigitNeedles(sought for sought, by_digits in self._found if by_digits)
        return self._digits

    def entity(self, sought: str, by_digits: bool) -> str:
        return self._found[(sought, by_digits)][0]

    def written(self, sought: str) -> str:
        return self._found[(sought, False)][1]


# Up to this many values, the screen tests each one as a substring of the text (values × text).
_FEW_VALUES = 16


def _could_be_in(sought: Sought, text: str) -> bool:
    """Whether a raw value may be in ``text`` (a record's strings joined): never False when the full
    check would find one. Its tests, or supersets of them: a value's casefolded text as a substring (the
    full check wants a whole word), a number's digits among all the text's digits (it reads digit runs).
    With a record's usual handful of values, each is tested alone; with many, the indexes keep it linear."""
    words, numbers = sought
    if len(words) + len(numbers) > _FEW_VALUES:
        if numbers and next(DigitNeedles(numbers).find(digits_of(text)), None) is not None:
            return True
        return bool(words) and WordNeedles(words).any_in(text.casefold())
    if numbers:
        digits = digits_of(text)
        for number in numbers:
            if number in digits:
                return True
    if words:
        folded = text.casefold()
        for word in words:
            if word in folded:
                return True
    return False


def _sought(values: list[tuple[str, str, str]], min_length: int) -> Sought:
    """What the screen looks for of raw values: each value's needle (``_needle``), texts and digits
    apart. ``sought_function`` is the same for a plan's values, read from the record directly."""
    sought: Sought = ([], [])
    for entity, _path, value in values:
        _add_sought(entity, value, min_length, sought[0], sought[1])
    return sought


def _add_sought(entity: str, value: object, min_length: int, words: list[str], numbers: list[str]) -> None:
    needle = _needle(entity, value, min_length)
    if needle is not None:
        (numbers if needle[2] else words).append(needle[1])


def _collect_sought(
    getter: Getter, record: dict[str, Any], min_length: int, words: list[str], numbers: list[str]
) -> None:
    values: list[tuple[str, str, str]] = []
    collect_values(getter, record, values)
    for entity, _path, value in values:
        _add_sought(entity, value, min_length, words, numbers)


def sought_function(getters: Sequence[Getter]) -> SoughtOf:
    """``_sought`` of the values the getters read, generated from the same reads as ``Plan.pii_values``
    (``schema.values.read_lines``): the screen runs it on every record, and a clean record needs nothing
    else of its raw values.

    A plain ASCII value, nearly every one, is its own normalized form and casefolds as it lower-cases:
    its needle is written out in line (the entity of each path is known here, so a number entity's
    digits branch is only written where it applies). Any other value goes through ``_needle`` itself.
    """

    def on_string(i: int, entity: str, path: str) -> list[str]:
        if entity in NUMBER_ENTITIES:
            ascii_needle = [
                "    d = digits_of(s)",
                "    if len(d) >= MIN_NUMBER_DIGITS:",
                "        numbers.append(d)",
                "    elif len(s) >= min_length:",
                "        words.append(s.lower())",
            ]
        else:
            ascii_needle = ["    if len(s) >= min_length:", "        words.append(s.lower())"]
        return [
            "s = v.strip()",
            "if s.isascii():",
            *ascii_needle,
            "else:",
            f"    add({literal(entity)}, v, min_length, words, numbers)",
        ]

    lines = ["def sought(record, min_length):", "    words = []", "    numbers = []"]
    lines += read_lines(
        getters, on_string, lambda i: [f"collect(getters[{i}], record, min_length, words, numbers)"]
    )
    lines.append("    return words, numbers")
    namespace = {
        "add": _add_sought,
        "collect": _collect_sought,
        "getters": tuple(getters),
        "digits_of": digits_of,
        "MIN_NUMBER_DIGITS": MIN_NUMBER_DIGITS,
    }
    function: SoughtOf = generate("sought", lines, namespace, "verifier sought values")
    return function


def _needle(entity: str, value: object, min_length: int) -> _Needle | None:
    """What the checks look for of one raw value: its digits (a number of a number entity, at least
    ``MIN_NUMBER_DIGITS`` long) or its normalized, casefolded text (at least ``min_length`` long); None
    when too short."""
    if not isinstance(value, str):
        return None
    value = normalized_text(value.strip())
    if entity in NUMBER_ENTITIES:
        digits = digits_of(value)
        if len(digits) >= MIN_NUMBER_DIGITS:
            return (entity, digits, True, value)
    if len(value) >= min_length:
        return (entity, value.casefold(), False, value)
    return None


def _search_needles(
    needles: _Needles, leaves: list[Leaf], joined: _Joined, runs: list[Run] | None, hits: list[_Hit]
) -> None:
    if needles.digits:
        if runs is None:
            runs = digit_runs(joined.text)
        for start, end, digits in runs:
            for at, sought in needles.digits.find(digits):
                span_start, span_end = _digits_span(joined.text, start, end, at, len(sought))
                index, leaf_start, leaf_end = joined.place(span_start, span_end)
                hits.append((index, leaf_start, leaf_end, needles.entity(sought, True)))
    if needles.words and needles.words.any_in(joined.text.casefold()):
        for index in joined.indexes:
            _search_text(needles, leaves[index][1], index, hits)


def _search_text(needles: _Needles, leaf: str, index: int, hits: list[_Hit]) -> None:
    norm = normalize(leaf)
    text = norm.text
    folded = text.casefold()
    found = list(needles.words.find(folded))
    if not found:
        return
    if len(folded) == len(text):
        for start, end, sought in found:
            hits.append((index, *_leaf_span(norm, start, end), needles.entity(sought, False)))
        return
    # Casefolding changed lengths (ß → ss): spans come from a case-insensitive search of the text.
    for sought in dict.fromkeys(sought for _, _, sought in found):
        entity = needles.entity(sought, False)
        matches = list(_whole_word(needles.written(sought)).finditer(text))
        for match in matches:
            hits.append((index, *_leaf_span(norm, match.start(), match.end()), entity))
        if not matches:
            hits.append((index, 0, len(leaf), entity))


def _leaf_span(norm: Normalized, start: int, end: int) -> tuple[int, int]:
    return norm.span(start, end)


def _digits_span(text: str, start: int, end: int, first: int, count: int) -> tuple[int, int]:
    """Character span in ``text`` of digits ``first .. first + count`` of the run ``text[start:end]``."""
    seen = 0
    span_start = start
    for position in range(start, end):
        if text[position].isdigit():
            if seen == first:
                span_start = position
            seen += 1
            if seen == first + count:
                return span_start, position + 1
    return span_start, end


@functools.lru_cache(maxsize=1024)
def _whole_word(value: str) -> re.Pattern[str]:
    # A value inside a longer word is another value ("Anna" in "Annabelle"): where the value begins or
    # ends with a letter or digit, the text must not continue with one.
    head = r"(?<!\w)" if value[:1].isalnum() else ""
    tail = r"(?!\w)" if value[-1:].isalnum() else ""
    return re.compile(head + re.escape(value) + tail, re.IGNORECASE)


def _redact(leaves: list[Leaf], hits: list[_Hit]) -> None:
    spans: dict[int, list[Span]] = {}
    for index, start, end, entity in hits:
        spans.setdefault(index, []).append(Span(start, end, entity))
    # Reverse order: a map's values are rewritten before its keys are renamed (see replace_leaf).
    for index in sorted(spans, reverse=True):
        leaf = leaves[index]
        replace_leaf(leaf, replace_spans(leaf[1], spans[index], "tag"))
