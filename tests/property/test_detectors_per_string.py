"""The verifier's detectors read a record's strings joined by a separator, one pass per record; what
they find there is exactly what they find in each string alone (hypothesis).

This is what lets the verifier join strings at all, and remember a string it found clean: nothing is
found across two strings, and no finding reaches into the next one.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_anon.detection.contextual import VERIFIER
from stream_anon.detection.text import SEPARATOR
from stream_anon.detection.validated import Finding

# Pieces of every entity the verifier's detectors find, and of their contexts, so that strings end and
# begin in the middle of what a pattern reads.
FRAGMENTS = [
    "jane.doe@example.com", "anna at example dot com", "anna(at)example.com", "bob [at] gmail [dot] com",
    "anna at", "example dot com", "born", "born on", "03/04/1947", "DOB:", "1950-10-05", "3 April 1951",
    "as my date of birth", "geboren", "https://github.com/jdoe", "https://", "github.com/jdoe",
    "/users/jdoe", "+1 (415) 555-0100", "415", "555-0100", "4111 1111 1111 1111", "4111 1111",
    "DE89 3704 0044 0532 0130 00", "123-45-6789", "203.0.113.7", "203.0.", "2001:db8::1", "::ffff:",
    "v3.12.1", "order 48213", "call me", "at", "dot", "@", ".", "-", "/", "(", ")", " ", "",
]  # fmt: skip
strings = st.lists(st.sampled_from(FRAGMENTS), max_size=5).map(" ".join) | st.lists(
    st.sampled_from(FRAGMENTS), max_size=4
).map("".join)


def _found_alone(parts: list[str]) -> list[Finding]:
    found: list[Finding] = []
    offset = 0
    for part in parts:
        found.extend(Finding(f.entity, f.start + offset, f.end + offset) for f in VERIFIER.find(part))
        offset += len(part) + len(SEPARATOR)
    return found


@settings(max_examples=1500, deadline=None)
@given(st.lists(strings, min_size=1, max_size=5))
def test_the_joined_strings_hold_exactly_the_findings_of_each_string(parts: list[str]) -> None:
    assert VERIFIER.find(SEPARATOR.join(parts)) == _found_alone(parts)


def test_a_birth_word_and_a_date_in_two_strings_are_not_a_date_of_birth() -> None:
    assert VERIFIER.find("born") == []
    assert VERIFIER.find(f"born{SEPARATOR}03/04/1947") == []
    assert VERIFIER.find("born 03/04/1947") != []


def test_a_profile_url_ends_with_its_string() -> None:
    url = "https://github.com/jdoe"
    assert VERIFIER.find(f"{url}{SEPARATOR}next") == [Finding("PROFILE_URL", 0, len(url))]


@settings(max_examples=1500, deadline=None)
@given(st.lists(strings, min_size=1, max_size=5))
def test_finds_any_says_whether_find_finds_anything(parts: list[str]) -> None:
    # The verifier's screen only asks whether there is a finding, and skips ordering and overlaps.
    text = SEPARATOR.join(parts)
    assert VERIFIER.finds_any(text) is bool(VERIFIER.find(text))
