"""The in-line verifier: validated detectors, the exact search for raw PII values, redaction."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import fastavro
import pytest

from stream_anon.detection import validated as detectors
from stream_anon.verify import Leak, Verifier

SCHEMA = {
    "type": "record",
    "name": "Feedback",
    "namespace": "test",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "rating", "type": "int"},
        {
            "name": "user",
            "type": {
                "type": "record",
                "name": "User",
                "fields": [
                    {"name": "token", "type": "string"},
                    {"name": "ip", "type": ["null", "string"]},
                ],
            },
        },
        {"name": "comment", "type": ["null", "string"]},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "attrs", "type": {"type": "map", "values": "string"}},
        {"name": "channel", "type": {"type": "enum", "name": "Channel", "symbols": ["APP", "WEB"]}},
    ],
}


@dataclass
class FakePlan:
    """The three things the verifier reads from a compiled plan."""

    pii: list[tuple[str, str]] = field(default_factory=list)  # (entity, path in the raw record)
    generated_paths: frozenset[str] = frozenset({"user.token", "user.ip"})
    pii_getters: None = None  # lists its values only (pii_values), does not say where it reads them
    parsed_derived: Any = field(default_factory=lambda: fastavro.parse_schema(copy.deepcopy(SCHEMA)))

    def pii_values(self, record: dict[str, Any]) -> list[tuple[str, str, str]]:
        values = []
        for entity, path in self.pii:
            value: Any = record
            for part in path.split("."):
                value = value[part]
            values.append((entity, path, value))
        return values


def sanitized(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": "5f0c2a9e-61b8-4c1e-9d3f-0a7b6c5d4e3f",
        "rating": 4,
        "user": {"token": "tok_3f9a8b7c6d5e4f30a1b2c3d4", "ip": "203.0.113.0/24"},
        "comment": "Checkout works, version 3.12.1, rated 4.5/5 on 2024-03-15 10:30. Order #48213.",
        "tags": ["ios", "billing"],
        "attrs": {"campaign": "spring-2024"},
        "channel": "APP",
    }
    record.update(overrides)
    return record


def found(text: str) -> list[tuple[str, str]]:
    return [(f.entity, text[f.start : f.end]) for f in detectors.find(text)]


@pytest.mark.parametrize(
    ("text", "entity", "value"),
    [
        ("write to jane.doe+news@mail.example.org today", "EMAIL_ADDRESS", "jane.doe+news@mail.example.org"),
        ("call +1 415 555 0132 after six", "PHONE_NUMBER", "+1 415 555 0132"),
        ("call (415) 555-0132", "PHONE_NUMBER", "(415) 555-0132"),
        ("mobile 0151 2345 6789", "PHONE_NUMBER", "0151 2345 6789"),
        ("+33 1 42 68 53 00", "PHONE_NUMBER", "+33 1 42 68 53 00"),
        ("tel:+4915123456789", "PHONE_NUMBER", "+4915123456789"),
        ("card 4111 1111 1111 1111 exp 12/27", "CREDIT_CARD", "4111 1111 1111 1111"),
        ("amex 378282246310005", "CREDIT_CARD", "378282246310005"),
        ("iban DE89 3704 0044 0532 0130 00 thanks", "IBAN_CODE", "DE89 3704 0044 0532 0130 00"),
        ("GB82WEST12345698765432", "IBAN_CODE", "GB82WEST12345698765432"),
        ("ssn 078-05-1120", "US_SSN", "078-05-1120"),
        ("from 198.51.100.23.", "IP_ADDRESS", "198.51.100.23"),
        ("from 2001:db8::8a2e:370:7334 today", "IP_ADDRESS", "2001:db8::8a2e:370:7334"),
        ("mapped ::ffff:192.0.2.1", "IP_ADDRESS", "::ffff:192.0.2.1"),
    ],
)
def test_each_detector_finds_its_entity(text: str, entity: str, value: str) -> None:
    assert found(text) == [(entity, value)]


@pytest.mark.parametrize(
    "text",
    [
        "user@localhost and a..b@example.com",  # no top-level domain; dots in a row
        "rated 4.5/5, 5 stars, 100% happy",  # ratings
        "since 2019, 2020 and 2021",  # years
        "python 3.12.1 and macOS 10.15.7.1234",  # versions
        "order 1234567890 and id 48213",  # bare digit runs are ids
        "on 2024-03-15 10:30:00 and 15.03.2024",  # dates and times
        "uuid 55210162-2646-a1e3-a69c-2230d3c619b2",  # digits inside an id
        "ref ORD-2024-000123456",  # hyphenated id
        "card 4111 1111 1111 1112",  # fails Luhn
        "id 1234567812345678",  # Luhn-valid but no card issuer
        "DE89 3704 0044 0532 0130 01",  # IBAN with a bad checksum
        "000-12-3456 666-12-3456 900-12-3456 123-00-4567 123-45-0000",  # SSNs never issued
        "256.1.1.1 and 1.2.3.4.5 and 0.0.0.0",  # not IPv4 addresses
        "net 10.1.2.0/24",  # a network, what generalizing an address gives
        "at 12:30:45, mac 00:1a:2b:3c:4d:5e",  # times and MAC addresses are not IPv6
    ],
)
def test_near_misses_are_not_findings(text: str) -> None:
    assert found(text) == []


def test_a_clean_record_passes() -> None:
    plan = FakePlan(pii=[("EMAIL_ADDRESS", "email"), ("PERSON", "name")])
    raw = {"email": "jane.doe@example.com", "name": "Jane Doe"}
    result = Verifier().check(plan, raw, sanitized())
    assert result.leaks == []
    assert result.clean


def test_detectors_report_entity_and_path_for_every_kind_of_field() -> None:
    record = sanitized(
        comment="mail me: jane@example.com",
        tags=["ios", "call 415-555-0132"],
        attrs={"note": "card 4111111111111111", "jane@example.org": "key holds PII"},
    )
    result = Verifier().check(FakePlan(), {}, record)
    assert result.leaks == [
        Leak("EMAIL_ADDRESS", "comment"),
        Leak("PHONE_NUMBER", "tags[]"),
        Leak("CREDIT_CARD", "attrs{}"),
        Leak("EMAIL_ADDRESS", "attrs{key}"),
    ]


def test_values_generated_on_purpose_are_not_leaks() -> None:
    # An IP prefix and a token at generated paths look like PII to a detector; they are skipped.
    record = sanitized(user={"token": "198.51.100.23", "ip": "198.51.100.0"})
    assert Verifier().check(FakePlan(), {}, record).leaks == []


def test_the_same_value_outside_a_generated_path_is_a_leak() -> None:
    record = sanitized(comment="from 198.51.100.23")
    assert Verifier().check(FakePlan(), {}, record).leaks == [Leak("IP_ADDRESS", "comment")]


def test_exact_search_catches_a_raw_value_that_slipped_through_a_generated_path() -> None:
    # A rule that should have replaced the name left it as is: no detector knows names, the exact search does.
    plan = FakePlan(pii=[("PERSON", "name")])
    record = sanitized(user={"token": "Jane Whitfield", "ip": None})
    result = Verifier().check(plan, {"name": "Jane Whitfield"}, record)
    assert result.leaks == [Leak("PERSON", "user.token")]


def test_exact_search_ignores_case_and_needs_whole_words() -> None:
    plan = FakePlan(pii=[("PERSON", "name")])
    verifier = Verifier()
    assert verifier.check(plan, {"name": "Anna"}, sanitized(comment="thanks ANNA!")).leaks == [
        Leak("PERSON", "comment")
    ]
    assert verifier.check(plan, {"name": "Anna"}, sanitized(comment="Annabelle's shop")).leaks == []


def test_exact_search_compares_phone_numbers_by_their_digits() -> None:
    # Written differently and without a "+": no detector flags the bare digit run, the exact search does.
    plan = FakePlan(pii=[("PHONE_NUMBER", "phone")])
    record = sanitized(comment="reach me on 4915123456789 please")
    result = Verifier().check(plan, {"phone": "+49 151 2345 6789"}, record)
    assert result.leaks == [Leak("PHONE_NUMBER", "comment")]


def test_short_raw_values_are_not_searched() -> None:
    plan = FakePlan(pii=[("PERSON", "name")])
    record = sanitized(comment="bob said it works")
    assert Verifier().check(plan, {"name": "Bob"}, record).leaks == []


def test_redact_replaces_the_span_and_lets_the_record_go_on() -> None:
    plan = FakePlan(pii=[("PERSON", "name")])
    record = sanitized(
        comment="Jane Whitfield here, mail jane@example.com or call +1 415 555 0132",
        attrs={"jane@example.org": "x", "contact": "198.51.100.23"},
    )
    result = Verifier("redact").check(plan, {"name": "Jane Whitfield"}, record)
    assert {leak.entity for leak in result.leaks} == {"PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "IP_ADDRESS"}
    assert result.record["comment"] == "<PERSON> here, mail <EMAIL_ADDRESS> or call <PHONE_NUMBER>"
    assert result.record["attrs"] == {"<EMAIL_ADDRESS>": "x", "contact": "<IP_ADDRESS>"}
    assert result.record["id"] == sanitized()["id"]
    assert Verifier().check(plan, {"name": "Jane Whitfield"}, result.record).clean


def test_dead_letter_mode_leaves_the_record_untouched() -> None:
    record = sanitized(comment="mail jane@example.com")
    result = Verifier("dead_letter").check(FakePlan(), {}, record)
    assert result.leaks == [Leak("EMAIL_ADDRESS", "comment")]
    assert result.record["comment"] == "mail jane@example.com"


def test_leaks_are_listed_once_per_entity_and_path() -> None:
    record = sanitized(comment="a@example.com, b@example.com, c@example.com")
    assert Verifier().check(FakePlan(), {}, record).leaks == [Leak("EMAIL_ADDRESS", "comment")]


def test_recursive_schemas_are_walked() -> None:
    node = {
        "type": "record",
        "name": "Node",
        "fields": [
            {"name": "text", "type": "string"},
            {"name": "next", "type": ["null", "Node"]},
        ],
    }
    plan = FakePlan(generated_paths=frozenset(), parsed_derived=fastavro.parse_schema(node))
    record = {"text": "ok", "next": {"text": "still ok", "next": {"text": "jane@example.com", "next": None}}}
    leaks = Verifier().check(plan, {}, record).leaks
    assert [leak.entity for leak in leaks] == ["EMAIL_ADDRESS"]


def test_an_unknown_on_leak_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="on_leak"):
        Verifier("ignore")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("entity", "value", "masked"),
    [
        ("EMAIL_ADDRESS", "jane.doe@example.com", "j***@e***.com"),
        ("CREDIT_CARD", "4111 1111 1111 1111", "**** **** **** 1111"),
        ("PERSON", "Jane Whitfield", "J*** W***"),
        ("PHONE_NUMBER", "+1 415 555 0132", "+* *** *** ****"),
        ("IP_ADDRESS", "198.51.100.23", "198.**.***.**"),
    ],
)
def test_partial_masks_hint_at_the_value_without_revealing_it(entity: str, value: str, masked: str) -> None:
    assert detectors.partial_mask(entity, value) == masked


def test_the_exact_search_reads_each_string_once_whatever_the_number_of_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Issue 22: every raw value was searched in every string, values x strings; a record of 100,000
    # addresses took minutes. Each string is now normalized once, however many values the record has.
    from stream_anon import verify

    calls = 0
    normalize = verify.normalize

    def counting(text: str) -> Any:
        nonlocal calls
        calls += 1
        return normalize(text)

    monkeypatch.setattr(verify, "normalize", counting)
    count = 300
    emails = [f"person{i}@example{i % 7}.org" for i in range(count)]

    class ManyValues(FakePlan):
        def pii_values(self, record: dict[str, Any]) -> list[tuple[str, str, str]]:
            return [("EMAIL_ADDRESS", "emails[]", email) for email in record["emails"]]

    plan = ManyValues(generated_paths=frozenset({"user.token"}))
    record = sanitized(tags=list(emails))
    result = Verifier("redact").check(plan, {"emails": emails}, record)
    assert result.leaks == [Leak("EMAIL_ADDRESS", "tags[]")]
    assert result.record["tags"] == ["<EMAIL_ADDRESS>"] * count
    assert calls <= 2 * (count + 10)


def test_a_string_found_clean_is_not_read_again_and_one_with_a_finding_always_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    verifier = Verifier()
    screened: list[str] = []
    finds_any = verifier._detectors.finds_any

    def recording(text: str) -> bool:  # the screen's reading (the full check calls find)
        screened.extend(text.split("\x00"))
        return finds_any(text)

    monkeypatch.setattr(verifier._detectors, "finds_any", recording)
    for _ in range(3):
        assert verifier.check(FakePlan(), {}, sanitized(id="f-1", tags=["ios"])).leaks == []
        assert verifier.check(FakePlan(), {}, sanitized(id="f-2", comment="jane@example.com")).leaks == [
            Leak("EMAIL_ADDRESS", "comment")
        ]
    assert screened.count("f-1") == 1 and screened.count("ios") == 1  # then known clean
    # a string read beside a finding is not known clean; a finding is never remembered
    assert screened.count("f-2") == 3 and screened.count("jane@example.com") == 3


def test_long_strings_are_not_remembered_and_the_memory_is_bounded() -> None:
    from stream_anon import verify

    verifier = Verifier()
    comment = "a long comment, " * 10
    verifier.check(FakePlan(), {}, sanitized(comment=comment))
    assert comment not in verifier._clean and "ios" in verifier._clean
    for i in range(verify._CLEAN_LIMIT + 10):
        verifier.check(FakePlan(), {}, sanitized(id=f"id-{i}"))
    assert len(verifier._clean) <= verify._CLEAN_LIMIT
