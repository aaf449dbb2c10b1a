"""What every detector reads a text as: normalized Unicode, digit runs, folded words.

One digit policy and one normalization for the scan, the verifier, the audit and the log scrubber:

* ``normalize``: NFKC (full-width ``ｊｏｈｎ＠ｅｘａｍｐｌｅ．ｃｏｍ`` is ``john@example.com``, a decomposed
  ``Zoe\u0308`` is ``Zoë``) with zero-width characters and soft hyphens removed (``jo\u200bhn`` is ``john``),
  keeping a map back to the original text so a span found in the normalized text is replaced in the text
  as written. ASCII text and text already in that form cost one check;
* ``DIGIT_RUN`` / ``digit_runs``: where numeric PII can be (runs of digits and the separators numbers are
  written with); ``NUMBER_ENTITIES`` are compared digit by digit, values shorter than ``MIN_NUMBER_DIGITS``
  digits (``MIN_VALUE_LENGTH`` characters for other values) are not searched: they would match by chance;
* ``fold``: a word without case and accents ("Zoë" and "zoe" are one name).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

PHONE_NUMBER = "PHONE_NUMBER"
CREDIT_CARD = "CREDIT_CARD"
US_SSN = "US_SSN"

# Entities whose raw values are numbers that may be re-punctuated: compared digit for digit.
NUMBER_ENTITIES = frozenset({PHONE_NUMBER, CREDIT_CARD, US_SSN})
MIN_NUMBER_DIGITS = 7
MIN_VALUE_LENGTH = 4

# Joins strings read in one pass (a record's strings in the verifier). No detector reads across it: no
# pattern matches it and no window reaches past it, so the joined text holds exactly the findings of each
# string (tests/property/test_detectors_per_string.py).
SEPARATOR = "\x00"

# A run of digits and the separators numbers are written with; every numeric candidate lies in one.
# Possessive: a run never gives characters back, and nothing follows it in the pattern.
DIGIT_RUN = re.compile(r"\d[\d .()/\-]{6,}+")
_NOT_DIGIT = re.compile(r"\D")

# A DIGIT_RUN match: (start, end, its digits).
Run = tuple[int, int, str]


def digit_runs(text: str) -> list[Run]:
    """The ``DIGIT_RUN`` matches of ``text``: where numeric PII can be."""
    match = DIGIT_RUN.search(text)
    runs: list[Run] = []
    while match is not None:  # nearly always zero or one round: one search per run and one to end
        run = match.group()
        runs.append((match.start(), match.end(), digits_of(run)))
        match = DIGIT_RUN.search(text, match.end())
    return runs


_NOT_ASCII_DIGIT = bytes(b for b in range(128) if not 0x30 <= b <= 0x39)


def digits_of(text: str) -> str:
    """Every digit of ``text``, in order (for ASCII text a bytes ``translate`` in C, a third of a regex)."""
    if text.isascii():
        return text.encode().translate(None, _NOT_ASCII_DIGIT).decode()
    return _NOT_DIGIT.sub("", text)


def fold(word: str) -> str:
    """``word`` without case and accents: "Zoë" and "zoe" are one name."""
    if word.isascii():
        return word.lower()
    decomposed = unicodedata.normalize("NFD", word.replace("’", "'"))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


# Characters that change nothing a reader sees and split a value for a pattern: zero-width space,
# non-joiner, joiner, word joiner, byte-order mark, soft hyphen, Mongolian vowel separator.
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e"
_INVISIBLE_RE = re.compile(f"[{_INVISIBLE}]")


@dataclass(frozen=True, slots=True)
class Normalized:
    """A text as the detectors read it, and where each of its characters came from.

    ``starts``/``ends`` are None when the text needed no change; otherwise ``text[i]`` came from the
    cluster (a character with its combining marks) ``original[starts[i]:ends[i]]``.
    """

    original: str
    text: str
    starts: tuple[int, ...] | None = None
    ends: tuple[int, ...] | None = None

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The span of the original text that ``text[start:end]`` came from (``start < end``)."""
        if self.starts is None or self.ends is None:
            return start, end
        return self.starts[start], self.ends[end - 1]


def normalize(text: str) -> Normalized:
    """``text`` in NFKC without zero-width characters, with the map back (see ``Normalized``)."""
    if text.isascii() or (unicodedata.is_normalized("NFKC", text) and _INVISIBLE_RE.search(text) is None):
        return Normalized(text, text)
    pieces: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    length = len(text)
    index = 0
    while index < length:
        cluster_end = index + 1
        while cluster_end < length and unicodedata.combining(text[cluster_end]):
            cluster_end += 1
        cluster = text[index:cluster_end]
        if cluster[0] in _INVISIBLE:
            index = cluster_end
            continue
        normalized = unicodedata.normalize("NFKC", cluster.translate(_DROP_INVISIBLE))
        pieces.append(normalized)
        starts.extend([index] * len(normalized))
        ends.extend([cluster_end] * len(normalized))
        index = cluster_end
    return Normalized(text, "".join(pieces), tuple(starts), tuple(ends))


_DROP_INVISIBLE = {ord(c): None for c in _INVISIBLE}


def normalized_text(text: str) -> str:
    """``normalize(text).text`` without the map back, for a text that is searched, not edited (a known
    value, the verifier's screen); an ASCII text costs one check."""
    if text.isascii():
        return text
    return normalize(text).text
