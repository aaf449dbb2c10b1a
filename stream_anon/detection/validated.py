"""Fast validated detectors: structured PII found by pattern and proved by its checksum or grammar.

Each detector finds candidates with one precompiled pattern and keeps only those that validate (Luhn for
cards, mod-97 for IBANs, the SSA's rules for SSNs, ``ipaddress`` for IPs, a phone's digit count and
grouping). Python's regex engine pays for every character it looks at, so ``find`` looks at a string
once: the numeric detectors (phone, card, SSN, IPv4, IBAN) only run on the short windows around runs of
seven or more digits and separators (``DIGIT_RUN``), and the others behind a substring test (``@``,
``::``). A string without any costs one regex search and two substring tests. The verifier, the log
scrubber, the audit and the scan (as a Presidio recognizer) share them.

Entity names are Presidio's, so the audit can merge both sources.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from stream_anon.detection.spans import Span, replace_spans
from stream_anon.detection.text import CREDIT_CARD, PHONE_NUMBER, SEPARATOR, US_SSN, Run, digit_runs

EMAIL_ADDRESS = "EMAIL_ADDRESS"
IBAN_CODE = "IBAN_CODE"
IP_ADDRESS = "IP_ADDRESS"
__all__ = ["CREDIT_CARD", "EMAIL_ADDRESS", "IBAN_CODE", "IP_ADDRESS", "PHONE_NUMBER", "US_SSN", "Run"]


@dataclass(frozen=True, slots=True)
class Finding:
    """A validated span ``text[start:end]`` holding an ``entity``."""

    entity: str
    start: int
    end: int


class Detector(Protocol):
    """Finds one entity.

    ``window`` is the number of characters to add before and after each ``DIGIT_RUN`` match for a
    detector whose candidates can only be there: ``find`` then only sees the windows of runs with at
    least ``min_digits`` digits that contain its ``gate`` substring. ``None`` is for a detector that
    scans the whole text, when the text contains its ``gate`` and, if it has ``keywords`` (lower-case
    words of its context, such as "born"), one of them in the lower-cased text.

    Gates are what a ``DetectorSet`` tests before it calls ``find``; ``find`` called alone finds the
    same, only slower.
    """

    @property
    def entity(self) -> str: ...

    @property
    def window(self) -> tuple[int, int] | None: ...

    @property
    def gate(self) -> str: ...

    @property
    def min_digits(self) -> int: ...

    @property
    def keywords(self) -> tuple[str, ...]: ...

    def find(self, text: str, pos: int = 0, endpos: int | None = None) -> Iterator[Finding]: ...


class EmailDetector:
    entity = EMAIL_ADDRESS
    _pattern = re.compile(
        r"(?<![\w.%+-])([\w.%+-]{1,64})@((?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63})(?![\w-])"
    )

    window = None
    gate = "@"
    keywords: tuple[str, ...] = ()
    min_digits = 0

    def find(self, text: str, pos: int = 0, endpos: int | None = None) -> Iterator[Finding]:
        for match in self._pattern.finditer(text, pos, len(text) if endpos is None else endpos):
            local = match.group(1)
            if local.startswith(".") or local.endswith(".") or ".." in local:
                continue
            yield Finding(self.entity, match.start(), match.end())


class _Validated:
    """A detector whose pattern proposes candidates and whose ``_valid`` confirms them; a candidate that
    fails may still validate without a short last group (``_longest_valid``)."""

    entity: str
    _pattern: re.Pattern[str]

    def find(self, text: str, pos: int = 0, endpos: int | None = None) -> Iterator[Finding]:
        for match in self._pattern.finditer(text, pos, len(text) if endpos is None else endpos):
            end = _longest_valid(match.group(), self._valid)
            if end:
                yield Finding(self.entity, match.start(), match.start() + end)

    def _valid(self, candidate: str) -> bool:
        raise NotImplementedError


class PhoneDetector(_Validated):
    """International (``+`` or ``00``) or grouped national numbers of 9 to 15 digits.

    A bare run of digits is an id far more often than a phone, so it counts only behind ``+``; the exact
    search of the verifier still catches a known phone number written that way. Dates, versions, IPv4
    addresses and SSN-shaped numbers are left to their own detectors or ignored.
    """

    entity = PHONE_NUMBER
    window = (2, 16)  # an extension ("x40057") follows the digit run
    gate = ""
    keywords: tuple[str, ...] = ()
    min_digits = 9
    _pattern = re.compile(
        r"(?<![\w+])(?<!\w[.\-/])(?:\+|00)?(?:\(\d{1,5}\)|\d)(?:[ .\-/]?(?:\(\d{1,5}\)|\d)){6,22}"
        r"(?:[ \t]*(?:x|ext\.?|extension)[ \t]*\d{1,6})?(?!\w|[.\-/:]\w)",
        re.IGNORECASE,
    )
    _extension = re.compile(r"[ \t]*(?:x|ext\.?|extension)[ \t]*\d{1,6}$", re.IGNORECASE)
    _groups = re.compile(r"\d+")
    _separators = re.compile(r"[ .\-/()]+")
    _ssn_shape = re.compile(r"\d{3}[ -]\d{2}[ -]\d{4}")
    _date = re.compile(r"(?:^|\D)(?:\d{4}[-/.]\d{2}[-/.]\d{2}|\d{2}[-/.]\d{2}[-/.]\d{4})(?:\D|$)")

    def _valid(self, candidate: str) -> bool:
        candidate = self._extension.sub("", candidate)  # "555-123-4567 x89": the number is the phone
        international = candidate.startswith(("+", "00"))
        groups = self._groups.findall(candidate)
        digits = sum(len(g) for g in groups)
        if international and candidate.startswith("00"):
            digits -= 2
        if not 9 <= digits <= 15:
            return False
        if len(groups) == 1:
            return candidate.startswith("+")
        if not international and len(groups[0]) > 5:
            return False  # "55210162-2646": the head of an id, not an area code
        separators = "".join(self._separators.findall(candidate))
        if "." in separators:
            # Dotted numbers are versions and addresses far more often than phones: 555.123.4567 only.
            if set(separators) != {"."} or any(len(g) < 2 for g in groups):
                return False
            if len(groups) == 4 and all(len(g) <= 3 for g in groups):
                return False
        if self._ssn_shape.fullmatch(candidate) or self._date.search(candidate):
            return False
        # After the country code and one area or trunk group, real groups have at least two digits
        # ("+33 1 42 68 53 00" is a phone, "3 12 1 4 56 78" is not).
        return all(len(g) >= 2 for g in groups[2 if international else 1 :])


def _longest_valid(candidate: str, valid: Callable[[str], bool]) -> int:
    """Length of ``candidate``, or of it without a short last group, if that validates (0 if neither).

    A greedy pattern can run into a following small number ("555 123 4567 2 times"); dropping that group
    recovers the number in front. Only groups of up to three digits are dropped, so an invalid card
    number does not turn into a valid phone number by losing its last four digits.
    """
    if valid(candidate):
        return len(candidate)
    cut = max(candidate.rfind(" "), candidate.rfind("-"))
    if cut > 0 and len(candidate) - cut - 1 <= 3 and valid(candidate[:cut]):
        return cut
    return 0


class CardDetector(_Validated):
    """Payment card numbers: known issuer prefix and length, Luhn checksum, consistent grouping."""

    entity = CREDIT_CARD
    window = (2, 2)
    gate = ""
    keywords: tuple[str, ...] = ()
    min_digits = 12
    _pattern = re.compile(r"(?<![\w+])(?<!\w[.\-/])\d(?:[ .\-]?\d){11,18}(?!\w|[.\-/]\w)")
    _digits = re.compile(r"\D")

    def _valid(self, candidate: str) -> bool:
        digits = self._digits.sub("", candidate)
        separators = {c for c in candidate if not c.isdigit()}
        return len(separators) <= 1 and _issuer_accepts(digits) and luhn_valid(digits)


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


# (prefix range low, high, lengths) of the major networks; enough to reject most Luhn-valid ids.
_ISSUERS: tuple[tuple[int, int, int, frozenset[int]], ...] = (
    (4, 4, 1, frozenset({13, 16, 19})),  # Visa
    (51, 55, 2, frozenset({16})),  # Mastercard
    (2221, 2720, 4, frozenset({16})),  # Mastercard 2-series
    (34, 34, 2, frozenset({15})),  # American Express
    (37, 37, 2, frozenset({15})),
    (300, 305, 3, frozenset({14, 16, 19})),  # Diners Club
    (36, 36, 2, frozenset({14, 16, 19})),
    (38, 39, 2, frozenset({14, 16, 19})),
    (6011, 6011, 4, frozenset({16, 17, 18, 19})),  # Discover
    (644, 649, 3, frozenset({16, 17, 18, 19})),
    (65, 65, 2, frozenset({16, 17, 18, 19})),
    (3500, 3599, 4, frozenset({16, 17, 18, 19})),  # JCB: 3528-3589 assigned, the whole 35 range taken
    (2131, 2131, 4, frozenset({15})),  # JCB, 15 digits
    (1800, 1800, 4, frozenset({15})),
    (62, 62, 2, frozenset({16, 17, 18, 19})),  # UnionPay
    (50, 50, 2, frozenset(range(12, 20))),  # Maestro
    (56, 69, 2, frozenset(range(12, 20))),
)


def _issuer_accepts(digits: str) -> bool:
    length = len(digits)
    for low, high, width, lengths in _ISSUERS:
        if length in lengths and low <= int(digits[:width]) <= high:
            return True
    return False


# Registered IBAN lengths by country (ISO 13616 registry).
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25,
    "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18,
    "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33,
    "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


class IbanDetector:
    """IBANs, compact or printed in groups of four, with the registered length and a mod-97 of 1."""

    entity = IBAN_CODE
    # The country code and an alphabetic bank code come before the digits, letters may follow them.
    window = (14, 42)
    gate = ""
    keywords: tuple[str, ...] = ()
    min_digits = 9
    _pattern = re.compile(
        r"(?<![\w])[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]{4}){2,7}(?: ?[A-Za-z0-9]{1,4})?(?![\w])"
    )

    def find(self, text: str, pos: int = 0, endpos: int | None = None) -> Iterator[Finding]:
        for match in self._pattern.finditer(text, pos, len(text) if endpos is None else endpos):
            candidate = match.group()
            length = _IBAN_LENGTHS.get(candidate[:2].upper())
            if length is None:
                continue
            # A printed IBAN may run into a following word; the registered length says where it ends.
            end, seen = match.start(), 0
            for offset, char in enumerate(candidate):
                if char != " ":
                    seen += 1
                    if seen == length:
                        end = match.start() + offset + 1
                        break
            if seen != length or (end < len(text) and text[end].isalnum()):
                continue
            if iban_valid(text[match.start() : end]):
                yield Finding(self.entity, match.start(), end)


def iban_valid(iban: str) -> bool:
    compact = iban.replace(" ", "").upper()
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact[2:4].isdigit() or not compact.isalnum():
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


class SsnDetector:
    """US Social Security numbers written ``AAA-GG-SSSS`` (or with spaces), with the SSA's invalid ranges.

    Area 000, 666 and 900-999, group 00 and serial 0000 are never issued. Nine bare digits are an id far
    more often than an SSN; the verifier's exact search covers a known SSN written that way.
    """

    entity = US_SSN
    window = (2, 2)
    gate = ""
    keywords: tuple[str, ...] = ()
    min_digits = 9
    _pattern = re.compile(r"(?<![\w+])(?<!\w[.\-/])(\d{3})([ -])(\d{2})\2(\d{4})(?!\w|[.\-/]\w)")

    def find(self, text: str, pos: int = 0, endpos: int | None = None) -> Iterator[Finding]:
        for match in self._pattern.finditer(text, pos, len(text) if endpos is None else endpos):
            area, _, group, serial = match.groups()
            if area == "000" or area == "666" or area[0] == "9" or group == "00" or serial == "0000":
                continue
            yield Finding(self.entity, match.start(), match.end())


class Ipv4Detector:
    """IPv4 addresses that ``ipaddress`` accepts; the unspecified address ``0.0.0.0`` is not one."""

    entity = IP_ADDRESS
    window = (2, 2)
    gate = "."
    keywords: tuple[str, ...] = ()
    min_digits = 4
    _pattern = re.compile(r"(?<![\w.])(\d{1,3}(?:\.\d{1,3}){3})(/\d{1,2})?(?![\w]|\.\d)")

    def find(self, text: str, pos: int = 0, endpos: int | None = None) -> Iterator[Finding]:
        for match in self._pattern.finditer(text, pos, len(text) if endpos is None else endpos):
            if match.group(2) and _is_network(match.group()):
                continue  # "10.1.2.0/24" names a network, which is what generalizing an address gives
            if _ip_valid(match.group(1)):
                yield Finding(self.entity, match.start(), match.end())


class Ipv6Detector:
    """IPv6 addresses (``::`` or eight groups) that ``ipaddress`` accepts, except ``::``."""

    entity = IP_ADDRESS
    window = None
    gate = ":"
    keywords: tuple[str, ...] = ()
    min_digits = 0
    _pattern = re.compile(
        r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{1,4})?(?:%\w+)?"
        r"(?![\w:]|\.\w)"
    )

    def find(self, text: str, pos: int = 0, endpos: int | None = None) -> Iterator[Finding]:
        if "::" not in text and text.count(":") < 7:
            return
        for match in self._pattern.finditer(text, pos, len(text) if endpos is None else endpos):
            if _ip_valid(match.group()):
                yield Finding(self.entity, match.start(), match.end())


def _is_network(candidate: str) -> bool:
    try:
        ipaddress.ip_network(candidate, strict=True)
    except ValueError:
        return False
    return True


def _ip_valid(candidate: str) -> bool:
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return not address.is_unspecified


DETECTORS: tuple[Detector, ...] = (
    EmailDetector(),
    Ipv6Detector(),
    CardDetector(),
    IbanDetector(),
    SsnDetector(),
    Ipv4Detector(),
    PhoneDetector(),
)


class DetectorSet:
    """Detectors run together, in priority order: where two findings overlap, the earlier one wins."""

    def __init__(self, detectors: Iterable[Detector]) -> None:
        self.detectors = tuple(detectors)
        for d in self.detectors:
            if d.keywords and d.window is not None:
                raise ValueError(f"{type(d).__name__}: keywords gate detectors that read the whole text only")
        # (priority, detector, gate, keywords) and (priority, detector, before, after, gate, min_digits)
        self._whole = tuple(
            (i, d, d.gate, _any_of(d.keywords)) for i, d in enumerate(self.detectors) if d.window is None
        )
        self._windowed = tuple(
            (i, d, *d.window, d.gate, d.min_digits)
            for i, d in enumerate(self.detectors)
            if d.window is not None
        )
        # Most texts hold none of the whole-text detectors' gates and keywords: one pass over the
        # lower-cased text for all of them says so. A detector without either always runs.
        self._always = any(not gate and keywords is None for _, _, gate, keywords in self._whole)
        gates = {gate.lower() for _, _, gate, _ in self._whole if gate}
        self._any_gate = _any_of((*gates, *(word for d in self.detectors for word in d.keywords)))

    def find(self, text: str, runs: list[Run] | None = None) -> list[Finding]:
        """Validated findings in ``text``, without overlaps, ordered by position.

        ``runs`` is ``digit_runs(text)`` when the caller has it already.
        """
        reads = list(self._reads(text, digit_runs(text) if runs is None else runs))
        if not reads:
            return []
        reads.sort(key=_priority)  # stable: a detector's windows stay in text order
        kept = _Kept()
        for _, detector, pos, endpos in reads:
            kept.add(detector.find(text, pos, endpos))
        found = kept.found
        if len(found) > 1:
            found.sort(key=lambda f: f.start)
        return found

    def finds_any(self, text: str) -> bool:
        """Whether ``find(text)`` finds anything: the first candidate of any detector says so (``find``
        keeps a first candidate whatever its priority), so nothing is ordered or kept."""
        for _, detector, pos, endpos in self._reads(text, digit_runs(text)):
            for _ in detector.find(text, pos, endpos):
                return True
        return False

    def _reads(self, text: str, runs: list[Run]) -> Iterator[tuple[int, Detector, int, int | None]]:
        """Where each detector reads (priority, detector, pos, endpos); most texts need none."""
        low = text.lower() if self._any_gate is not None else text
        if self._always or (self._any_gate is not None and self._any_gate.search(low)):
            for priority, detector, gate, keywords in self._whole:
                if gate in text and (keywords is None or keywords.search(low)):
                    yield priority, detector, 0, None
        if runs:
            for (start, end, digits), (first, last) in zip(runs, _string_bounds(text, runs), strict=True):
                for priority, detector, before, after, gate, min_digits in self._windowed:
                    if len(digits) >= min_digits and (not gate or gate in text[start:end]):
                        yield priority, detector, max(first, start - before), min(last, end + after)


def _priority(read: tuple[int, Detector, int, int | None]) -> int:
    return read[0]


def _any_of(words: Iterable[str]) -> re.Pattern[str] | None:
    """A pattern that finds any of ``words``, None for none. Grouped by first character, so the engine
    tries one branch where a text's character begins a word, not every word."""
    by_first: dict[str, list[str]] = {}
    for word in sorted(set(words), key=len, reverse=True):
        by_first.setdefault(word[0], []).append(re.escape(word[1:]))
    if not by_first:
        return None
    return re.compile(
        "|".join(
            re.escape(first) + (rests[0] if len(rests) == 1 else f"(?:{'|'.join(rests)})")
            for first, rests in by_first.items()
        )
    )


def _string_bounds(text: str, runs: list[Run]) -> list[tuple[int, int]]:
    """Where the string holding each run begins and ends, in a text of strings joined by ``SEPARATOR``:
    a run's window stops there, so a number at the end of one string is not read into the next."""
    if SEPARATOR not in text:
        return [(0, len(text))] * len(runs)
    bounds = []
    for start, end, _ in runs:
        last = text.find(SEPARATOR, end)
        bounds.append((text.rfind(SEPARATOR, 0, start) + 1, len(text) if last < 0 else last))
    return bounds


# Order is priority: a card before a phone, ``::ffff:192.0.2.1`` as one IPv6 address, not an IPv4 one.
DEFAULT = DetectorSet(DETECTORS)


def find(text: str, runs: list[Run] | None = None) -> list[Finding]:
    """Findings of the default detectors (see ``DetectorSet.find``)."""
    return DEFAULT.find(text, runs)


class _Kept:
    """Findings without overlaps, in the order kept, and their spans sorted: a candidate is tested
    against its two neighbours (bisection), not against every finding, so a text with many findings
    (an array of 100,000 addresses) costs linear time, not quadratic."""

    __slots__ = ("_ends", "_starts", "found")

    def __init__(self) -> None:
        self.found: list[Finding] = []
        self._starts: list[int] = []
        self._ends: list[int] = []

    def add(self, candidates: Iterable[Finding]) -> None:
        starts, ends = self._starts, self._ends
        for finding in candidates:
            # Kept spans are disjoint, so sorted by start they are sorted by end too.
            at = bisect.bisect_right(starts, finding.start)
            if at and ends[at - 1] > finding.start:
                continue
            if at < len(starts) and starts[at] < finding.end:
                continue
            starts.insert(at, finding.start)
            ends.insert(at, finding.end)
            self.found.append(finding)


def redact(text: str, detectors: DetectorSet = DEFAULT) -> str:
    """``text`` with every finding replaced by ``<ENTITY>``."""
    findings = detectors.find(text)
    if not findings:
        return text
    return replace_spans(text, [Span(f.start, f.end, f.entity) for f in findings])


def partial_mask(entity: str, value: str, limit: int = 40) -> str:
    """A hint of what was found that does not reveal it: ``j***@e***.com``, ``**** **** **** 1111``.

    Used for the audit's examples. Email keeps the first letter of each part and the top-level domain,
    cards the last four digits (as printed on receipts), names their initials, IPs their first group;
    every other letter and digit becomes ``*``.
    """
    value = value[:limit]
    if entity == EMAIL_ADDRESS and "@" in value:
        local, _, domain = value.rpartition("@")
        host, dot, tld = domain.rpartition(".")
        return f"{local[:1]}***@{host[:1]}***{dot}{tld}" if dot else f"{local[:1]}***@***"
    if entity == CREDIT_CARD:
        keep = _index_of_nth_alnum_from_end(value, 4)
        return _stars(value[:keep]) + value[keep:]
    if entity == IP_ADDRESS:
        separator = ":" if ":" in value else "."
        head, sep, tail = value.partition(separator)
        return head + sep + _stars(tail)
    if entity in (PHONE_NUMBER, US_SSN, IBAN_CODE):
        keep = 2 if entity == IBAN_CODE else 0
        return value[:keep] + _stars(value[keep:])
    return " ".join(f"{word[:1]}{'*' * 3}" if word else "" for word in value.split(" "))


def _stars(text: str) -> str:
    return "".join("*" if c.isalnum() else c for c in text)


def _index_of_nth_alnum_from_end(text: str, n: int) -> int:
    seen = 0
    for index in range(len(text) - 1, -1, -1):
        if text[index].isalnum():
            seen += 1
            if seen == n:
                return index
    return 0
