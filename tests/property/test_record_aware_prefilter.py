"""Record-aware detection skips tokenizing a text when none of the record's values can be in it; the
substring tests that decide this never skip a value the full search finds (hypothesis).

The texts mix what makes case and accent folding tricky: final and capital sigmas, "ß", dotted and
dotless i, the Kelvin sign, decomposed accents, typographic apostrophes, and values split by spaces,
tabs, dashes and line breaks.
"""

from __future__ import annotations

from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_anon.detection import record_aware
from stream_anon.detection.config import RecordAwareConfig
from stream_anon.detection.record_aware import RecordAware

PIECES = [
    "Zoë", "ZOE", "zoe\u0308", "Οδυσσέας", "ΟΔΥΣΣΕΑΣ", "οδυσσεας", "Straße", "STRASSE", "İpek", "ipek",
    "ıpek", "\u212aarl", "Karl", "O’Connor", "o'connor", "Anne-Marie", "anne marie", "DE89", "3704",
    "de89", "AB-12", "ab 12", "x9", " ", "-", "\t", "\n", ".", ",", "'", "’", "",
]  # fmt: skip
texts = st.lists(st.sampled_from(PIECES), max_size=8).map("".join)
values = st.lists(st.sampled_from(PIECES), min_size=1, max_size=3).map("".join)
known = st.lists(st.tuples(st.sampled_from(["PERSON", "IBAN_CODE", "DEVICE_ID"]), values), max_size=4)

FINDER = RecordAware(RecordAwareConfig(min_name_part=2))


def _everything(_text: str, candidates: list[object]) -> list[object]:
    return candidates


@settings(max_examples=3000, deadline=None)
@given(texts, known)
def test_the_substring_tests_skip_only_values_the_full_search_would_not_find(
    text: str, values: list[tuple[str, str]]
) -> None:
    found = FINDER.find(text, values)
    with (
        mock.patch.object(record_aware, "_names_maybe_in", _everything),
        mock.patch.object(record_aware, "_compact_maybe_in", _everything),
    ):
        assert found == FINDER.find(text, values)


def test_the_oracle_is_not_the_filtered_search() -> None:
    # a value the substring test rules out: the patched run above must take the other path
    assert record_aware._names_maybe_in("nothing here", [(("zoe",), "PERSON")]) == []
    assert record_aware._compact_maybe_in("nothing here", [("DE89", "IBAN_CODE")]) == []


def _find_names_by_trying_every_name(
    text: str, names: list[tuple[tuple[str, ...], str]]
) -> list[tuple[int, int, str]]:
    """The plain search ``_find_names`` indexes by first part: every name tried at every word."""
    words = [(m.start(), m.end(), record_aware.fold(m[0])) for m in record_aware._WORD.finditer(text)]
    names = sorted(names, key=lambda n: len(n[0]), reverse=True)
    joined = record_aware._SPACES_AND_DASHES.fullmatch
    found, i = [], 0
    while i < len(words):
        for parts, entity in names:
            n = len(parts)
            if i + n <= len(words) and all(
                words[i + k][2] == parts[k]
                and (k == 0 or joined(text[words[i + k - 1][1] : words[i + k][0]]))
                for k in range(n)
            ):
                found.append((words[i][0], words[i + n - 1][1], entity))
                i += n
                break
        else:
            i += 1
    return found


folded_names = st.lists(
    st.tuples(
        st.lists(st.sampled_from(PIECES).map(record_aware.fold), min_size=1, max_size=3).map(tuple),
        st.sampled_from(["PERSON", "LOCATION"]),
    ),
    max_size=6,
)


@settings(max_examples=3000, deadline=None)
@given(texts, folded_names)
def test_names_indexed_by_first_part_are_found_as_by_trying_every_name(
    text: str, names: list[tuple[tuple[str, ...], str]]
) -> None:
    assert list(record_aware._find_names(text, names)) == _find_names_by_trying_every_name(text, names)


def test_the_oracle_finds_the_longest_name_first() -> None:
    names = [(("karl",), "PERSON"), (("zoe", "karl"), "PERSON")]
    assert _find_names_by_trying_every_name("Zoë  Karl", names) == [(0, 9, "PERSON")]
    assert list(record_aware._find_names("Zoë  Karl", names)) == [(0, 9, "PERSON")]
