"""The street-address pattern's designator lists, grouped by first letter for speed, match exactly what
the plain lists match (hypothesis): the same addresses, at the same places."""

from __future__ import annotations

import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_anon.detection import contextual
from stream_anon.detection.contextual import StreetAddressDetector, by_first_letter

LISTS = [contextual._EN_TYPES, contextual._TYPE_FIRST, contextual._NAMED_ONLY, contextual._GLUED]
GROUPED = StreetAddressDetector._pattern


def _plain() -> regex.Pattern[str]:
    source = GROUPED.pattern
    for alternation in LISTS:
        assert by_first_letter(alternation) in source
        source = source.replace(by_first_letter(alternation), alternation)
    return regex.compile(source, GROUPED.flags)


PLAIN = _plain()
DESIGNATORS = sorted(
    {alternative.replace("\\", "").replace("?", "") for alt in LISTS for alternative in alt.split("|")}
)
PIECES = [
    "7631", "8", "26-83", "171", "5", "12b", "Flat 7", "Johnson", "Parisi", "Długa", "Manon Gillet", "de",
    "Wesack", "Karl-Marx-", "阿部", "Apt. 66", "Suite 690", ",", ", ", " ", "  ", ".", "\n", "the", "my",
]  # fmt: skip
words = st.sampled_from(PIECES) | st.sampled_from(DESIGNATORS).flatmap(
    lambda d: st.sampled_from([d, d.upper(), d.capitalize(), d + "s"])
)
texts = st.lists(words, max_size=10).flatmap(
    lambda parts: st.sampled_from([" ".join(parts), "".join(parts), ", ".join(parts)])
)


def test_grouping_keeps_every_alternative_and_the_letters_differ_under_case_folding() -> None:
    for alternation in LISTS:
        firsts = [a[0] for a in alternation.split("|")]
        assert len({f.casefold() for f in firsts}) == len({f.lower() for f in firsts})
        grouped = regex.compile(f"(?:{by_first_letter(alternation)})$", regex.IGNORECASE)
        for alternative in alternation.split("|"):
            word = alternative.replace("\\", "").replace("?", "")
            assert grouped.match(word), word
    assert PLAIN.pattern != GROUPED.pattern  # the oracle is the other spelling


@settings(max_examples=3000, deadline=None)
@given(texts)
def test_the_grouped_pattern_finds_what_the_plain_one_finds(text: str) -> None:
    assert [m.span() for m in GROUPED.finditer(text)] == [m.span() for m in PLAIN.finditer(text)]
