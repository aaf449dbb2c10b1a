"""Word lists grouped by first letter for speed match exactly what the plain lists match (hypothesis):
the street-address pattern finds the same addresses at the same places, and the lower-case name
pattern (whose lists hold groups of their own, behind a lookahead for where a match can begin) the
same overlapping matches, with the same groups."""

from __future__ import annotations

import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_anon.detection import contextual
from stream_anon.detection.contextual import (
    LowercaseNameDetector,
    StreetAddressDetector,
    alternatives,
    by_first_letter,
)

LISTS = [contextual._EN_TYPES, contextual._TYPE_FIRST, contextual._NAMED_ONLY, contextual._GLUED]
GROUPED = StreetAddressDetector._pattern


def _ungrouped(grouped: regex.Pattern[str], lists: list[str], lookahead: str = "") -> regex.Pattern[str]:
    """``grouped`` spelled with its lists as written and without its leading lookahead: the oracle."""
    assert grouped.pattern.startswith(lookahead)
    source = grouped.pattern.removeprefix(lookahead)
    for alternation in lists:
        assert by_first_letter(alternation) in source
        source = source.replace(by_first_letter(alternation), alternation)
    return regex.compile(source, grouped.flags)


PLAIN = _ungrouped(GROUPED, LISTS)
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


NAME_LISTS = [contextual._INTRODUCERS, contextual._NAME_FOLLOWS]
NAME_GROUPED = LowercaseNameDetector._pattern
WHERE_A_MATCH_BEGINS = r"(?=\w|[.!?;\n\-–—/|])"


NAME_PLAIN = _ungrouped(NAME_GROUPED, NAME_LISTS, WHERE_A_MATCH_BEGINS)
CUES = sorted(
    {a for alternation in NAME_LISTS for a in alternatives(alternation) if regex.fullmatch(r"[\w']+", a)}
    | {"co-worker", "coworker", "neighbor", "neighbour", "told by", "spoke to", "spoke  with", "talked with",
       "signed for by", "signed by", "my name is", "this is", "full name", "first\tname", "user name"}
)  # fmt: skip
NAME_PIECES = [
    "anna", "zeynep hübel", "kate wells", "jan van der spaendonck", "o'neil", "ana-maría", "Anna", "the",
    "help", " ", "  ", "\t", ",", ", ", ":", " - ", " – ", "—", "(", "[", '"', "“", "‘", "'", ".", "!", "?",
    "; ", "\n", "/", "|", "--", "x", "42",
]  # fmt: skip
name_words = st.sampled_from(NAME_PIECES) | st.sampled_from(CUES).flatmap(
    lambda cue: st.sampled_from([cue, cue.upper(), cue.capitalize()])
)
name_texts = st.lists(name_words, max_size=10).flatmap(
    lambda parts: st.sampled_from([" ".join(parts), "".join(parts)])
)


def _overlapped(pattern: regex.Pattern[str], text: str) -> list[tuple[tuple[int, int], ...]]:
    return [
        (m.span(), m.span("strong"), m.span("start"), m.span("name"))
        for m in pattern.finditer(text, overlapped=True)
    ]


def test_the_name_lists_split_only_at_top_level_bars() -> None:
    split = [r"spoke\s+(?:to|with)", "a[|]b", r"c\|d", "e"]
    assert alternatives("|".join(split)) == split
    for alternation in NAME_LISTS:
        firsts = [a[0] for a in alternatives(alternation)]
        assert all(f.isalpha() for f in firsts)
        assert len({f.casefold() for f in firsts}) == len({f.lower() for f in firsts})
    assert NAME_PLAIN.pattern != NAME_GROUPED.pattern


@settings(max_examples=3000, deadline=None)
@given(name_texts)
def test_the_grouped_name_pattern_matches_where_the_plain_one_does(text: str) -> None:
    assert _overlapped(NAME_GROUPED, text) == _overlapped(NAME_PLAIN, text)


def test_the_generated_texts_hold_names_after_every_kind_of_cue() -> None:
    # the property above is not vacuous: its pieces make strong, weak and sentence-start matches
    text = "my colleague zeynep hübel. anna and kate wells, thanks (jan van der spaendonck)"
    kinds = {
        (m.group("strong") is not None, m.group("start") is not None)
        for m in NAME_PLAIN.finditer(text, overlapped=True)
    }
    assert kinds == {(True, False), (False, False), (False, True)}


STREET = StreetAddressDetector()


@settings(max_examples=3000, deadline=None)
@given(texts)
def test_the_street_gate_passes_every_text_the_pattern_matches(text: str) -> None:
    if PLAIN.search(text) is not None:
        assert STREET.may_hold_an_address(text)


def test_the_street_gate_turns_away_numbers_without_a_designator() -> None:
    assert not STREET.may_hold_an_address("version 3.2 crashes on 14 march, build 7781")
    assert not STREET.may_hold_an_address("no number and no designator")
    addresses = ["7631 Johnson Village Suite 690", "rue de Rivoli", "Wesackstraße 26", "8, avenue Gillet"]
    for address in addresses:
        assert STREET.may_hold_an_address(f"send it to {address} please"), address
