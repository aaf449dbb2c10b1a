"""The multi-value search behind the verifier's exact check (``stream_anon.detection.exact``)."""

from __future__ import annotations

from stream_anon.detection.exact import DigitNeedles, WordNeedles


def found(needles: list[str], text: str) -> list[tuple[int, int, str]]:
    return list(WordNeedles(needles).find(text))


def test_values_are_found_as_whole_words_where_they_end_with_a_letter_or_digit() -> None:
    assert found(["anna"], "thanks anna!") == [(7, 11, "anna")]
    assert found(["anna"], "annabelle and joanna") == []
    assert found(["anna"], "anna_b") == [(0, 4, "anna")]  # an underscore is not a letter
    assert found(["anna smith"], "x anna smith.") == [(2, 12, "anna smith")]
    assert found(["anna smith"], "anna smithers") == []


def test_values_with_other_characters_at_their_ends_match_inside_words() -> None:
    assert found(["@example.com"], "bob@example.com") == [(3, 15, "@example.com")]
    assert found(["-ref-"], "x-ref-y") == [(1, 6, "-ref-")]


def test_a_value_whose_first_words_are_in_the_text_is_still_found_only_whole() -> None:
    # an IP address and the prefix a rule made of it share their first three numbers
    assert found(["100.209.129.228"], "ip 100.209.129.0/24") == []
    text = "ip 100.209.129.0/24 was 100.209.129.228."
    assert found(["100.209.129.228"], text) == [(24, 39, "100.209.129.228")]
    assert found(["100.209.129.228"], "100.209.129.2280") == []


def test_many_values_are_found_in_one_pass_in_text_order() -> None:
    emails = [f"user{i}@example.com" for i in range(1000)]
    text = " ".join(["noise", emails[999], "and", emails[3], "and", emails[3]])
    hits = list(WordNeedles(emails).find(text))
    assert [needle for _, _, needle in hits] == [emails[999], emails[3], emails[3]]
    assert all(text[start:end] == needle for start, end, needle in hits)
    assert not WordNeedles(emails).any_in("user1000@example.com user9@example.co")


def test_digit_values_are_found_anywhere_inside_a_run() -> None:
    needles = DigitNeedles(["4915123456789", "5550132"])
    assert sorted(needles.find("004915123456789")) == [(2, "4915123456789")]
    assert sorted(needles.find("15550132")) == [(1, "5550132")]
    assert list(needles.find("555013")) == []
