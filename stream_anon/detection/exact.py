"""Many raw values searched at once, in time linear in the text and in the number of values.

The verifier looks for every PII value of a record in every string of the same record. Searching the
text once per value costs values × text, and both grow with a record's size (an array of 100,000
e-mail addresses is 100,000 values in a text of 100,000 strings). Here the values are indexed once and
the text is read once:

* ``WordNeedles``: casefolded values found only as whole words where they begin or end with a letter
  or digit ("anna" is not in "annabelle"). Text and values are cut into the same tokens (a maximal run
  of letters and digits, or one other character), so such a match starts and ends on token boundaries:
  a value is found where its token sequence starts, looked up by its first token in a dict.
* ``DigitNeedles``: digit strings found anywhere inside a run of digits, looked up as slices of the run
  of each length some value has (a handful of lengths, whatever the number of values).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

# Every character is in exactly one token: a run of letters and digits, or any single other character.
_TOKEN = re.compile(r"[^\W_]+|[\W_]")
# Up to this many distinct first tokens in a text, the values behind them are tested as substrings
# before the token walk; more would make that test values × text.
_FEW = 16


def tokens_of(text: str) -> list[str]:
    return _TOKEN.findall(text)


class WordNeedles:
    """Casefolded values to find in casefolded text, each as whole words where it has letter/digit ends."""

    __slots__ = ("_by_first", "needles")

    def __init__(self, needles: Iterable[str]) -> None:
        self.needles = tuple(dict.fromkeys(n for n in needles if n))
        # Each value under its first token: one string per value kept, nothing more.
        self._by_first: dict[str, list[str]] = {}
        first_token = _TOKEN.match
        for needle in self.needles:
            match = first_token(needle)
            assert match is not None  # every character starts a token
            self._by_first.setdefault(match.group(), []).append(needle)

    def __bool__(self) -> bool:
        return bool(self.needles)

    def any_in(self, folded: str) -> bool:
        """Whether any value is in ``folded``."""
        return next(self.find(folded), None) is not None

    def find(self, folded: str) -> Iterator[tuple[int, int, str]]:
        """Each occurrence as ``(start, end, value)``, in text order."""
        by_first = self._by_first
        if not by_first:
            return
        tokens = tokens_of(folded)
        present = by_first.keys() & tokens
        if not present:  # the common case, one set operation
            return
        # A value's first token is often in the text without the value (an IP address and the prefix
        # a rule made of it share three): a substring test of those few values settles it at C speed.
        if len(present) <= _FEW and not any(n in folded for first in present for n in by_first[first]):
            return
        position = 0
        for token in tokens:
            candidates = by_first.get(token)
            if candidates:
                for needle in candidates:
                    # The match starts on a token boundary; it must also end on one where the value ends
                    # with a letter or digit (a tokens' run is maximal there).
                    end = position + len(needle)
                    if folded.startswith(needle, position) and not (
                        end < len(folded) and _is_word(needle[-1]) and _is_word(folded[end])
                    ):
                        yield position, end, needle
            position += len(token)


def _is_word(char: str) -> bool:
    return char.isalnum()


class DigitNeedles:
    """Digit strings to find anywhere inside runs of digits."""

    __slots__ = ("_lengths", "needles")

    def __init__(self, needles: Iterable[str]) -> None:
        self.needles = frozenset(n for n in needles if n)
        self._lengths = sorted({len(n) for n in self.needles})

    def __bool__(self) -> bool:
        return bool(self.needles)

    def find(self, digits: str) -> Iterator[tuple[int, str]]:
        """Each occurrence in ``digits`` as ``(offset, value)``, by value length then offset."""
        needles = self.needles
        for length in self._lengths:
            if length > len(digits):
                break
            for at in range(len(digits) - length + 1):
                part = digits[at : at + length]
                if part in needles:
                    yield at, part
