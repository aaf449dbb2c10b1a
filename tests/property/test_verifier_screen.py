"""The verifier's screen never lets through what its full check would catch (hypothesis).

``Verifier.check`` first screens a record's joined strings and runs the full, leaf-by-leaf check only
when the screen flags something; the two must agree on every record, leaks and redactions alike.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import fastavro
from hypothesis import given, settings
from hypothesis import strategies as st

import stream_anon.verify as verify_module
from stream_anon.verify import Verifier
from stream_anon.walk import MAP_KEY, compile_screen, compile_walker

SCHEMA = {
    "type": "record",
    "name": "Out",
    "namespace": "prop",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "rating", "type": "int"},
        {
            "name": "user",
            "type": [
                "null",
                {
                    "type": "record",
                    "name": "User",
                    "fields": [
                        {"name": "token", "type": "string"},
                        {"name": "ip", "type": ["null", "string"]},
                        {"name": "note", "type": ["null", "string"]},
                    ],
                },
            ],
        },
        {"name": "comment", "type": ["null", "string"]},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "hashes", "type": {"type": "array", "items": "string"}},
        {"name": "attrs", "type": {"type": "map", "values": ["null", "string"]}},
        {"name": "channel", "type": {"type": "enum", "name": "Channel", "symbols": ["APP", "WEB"]}},
    ],
}
GENERATED = frozenset({"user.token", "user.ip", "hashes[]", "attrs{}"})

PII = [
    ("EMAIL_ADDRESS", "jane.doe@example.com"),
    ("PHONE_NUMBER", "+1 (415) 555-0100"),
    ("IP_ADDRESS", "203.0.113.7"),
    ("CREDIT_CARD", "4111 1111 1111 1111"),
    ("PERSON", "Anna Lindqvist"),
    ("PERSON", "Straße"),
    ("US_SSN", "123-45-6789"),
]
fragments = st.sampled_from(
    [v for _, v in PII]
    + ["JANE.DOE@EXAMPLE.COM", "4155550100", "Annabelle", "anna lindqvist", "strasse", "2001:db8::1"]
    + ["v3.12.1", "rated 4/5", "order 48213", "call me", ""]
)
texts = st.lists(fragments | st.text(max_size=12), max_size=4).map(" ".join)


@dataclass
class Plan:
    pii: list[tuple[str, str]]
    generated_paths: frozenset[str] = GENERATED
    parsed_derived: Any = field(default_factory=lambda: fastavro.parse_schema(copy.deepcopy(SCHEMA)))

    def pii_values(self, record: dict[str, Any]) -> list[tuple[str, str, str]]:
        return [(entity, "raw", value) for entity, value in self.pii]


records = st.fixed_dictionaries(
    {
        "id": texts,
        "rating": st.integers(0, 5),
        "user": st.none()
        | st.fixed_dictionaries({"token": texts, "ip": st.none() | texts, "note": st.none() | texts}),
        "comment": st.none() | texts,
        "tags": st.lists(texts, max_size=3),
        "hashes": st.lists(texts, max_size=2),
        "attrs": st.dictionaries(texts, st.none() | texts, max_size=3),
        "channel": st.sampled_from(["APP", "WEB"]),
    }
)


@settings(max_examples=400, deadline=None)
@given(records, st.lists(st.sampled_from(PII), max_size=4), st.sampled_from(["dead_letter", "redact"]))
def test_the_screen_agrees_with_the_full_check(record: dict[str, Any], pii: Any, mode: Any) -> None:
    plan = Plan(pii)
    verifier = Verifier(mode)
    screened, full = copy.deepcopy(record), copy.deepcopy(record)
    result = verifier.check(plan, {}, screened)
    expected = verifier._full_check(plan, full, verifier._needles(plan.pii_values({})))
    assert result.leaks == expected.leaks
    assert result.record == expected.record


# One verifier for every example: the strings it found clean in earlier records are not read again.
SEASONED = Verifier("dead_letter")


@settings(max_examples=400, deadline=None)
@given(records, st.lists(st.sampled_from(PII), max_size=4))
def test_a_verifier_that_remembers_clean_strings_agrees_with_the_full_check(
    record: dict[str, Any], pii: Any
) -> None:
    plan = Plan(pii)
    for _ in range(2):  # the second time, every clean string of this record is known
        result = SEASONED.check(plan, {}, copy.deepcopy(record))
        expected = SEASONED._full_check(plan, copy.deepcopy(record), SEASONED._needles(plan.pii_values({})))
        assert result.leaks == expected.leaks


@settings(max_examples=200, deadline=None)
@given(records, st.lists(st.sampled_from(PII), max_size=4), st.sampled_from(["dead_letter", "redact"]))
def test_the_screen_agrees_with_the_full_check_when_it_uses_the_indexes(
    record: dict[str, Any], pii: Any, mode: Any
) -> None:
    # a record with many values is screened through the token and digit indexes, not substring tests
    with mock.patch.object(verify_module, "_FEW_VALUES", 0):
        test_the_screen_agrees_with_the_full_check.hypothesis.inner_test(record, pii, mode)  # type: ignore[attr-defined]


@settings(max_examples=200, deadline=None)
@given(records)
def test_the_screen_lists_the_walkers_strings_in_order(record: dict[str, Any]) -> None:
    parsed = fastavro.parse_schema(copy.deepcopy(SCHEMA))
    screen = compile_screen(parsed, GENERATED)
    assert screen is not None
    leaves = compile_walker(parsed)(record)
    checked = [text for path, text, _, _, how in leaves if how == MAP_KEY or path not in GENERATED]
    produced = [text for path, text, _, _, how in leaves if path in GENERATED and how != MAP_KEY]
    assert screen(record) == (checked, produced)


def test_schemas_the_walker_reads_by_value_have_no_screen() -> None:
    recursive = {
        "type": "record",
        "name": "Node",
        "fields": [{"name": "label", "type": "string"}, {"name": "next", "type": ["null", "Node"]}],
    }
    mixed = {
        "type": "record",
        "name": "M",
        "fields": [{"name": "v", "type": ["null", "string", {"type": "array", "items": "string"}]}],
    }
    assert compile_screen(fastavro.parse_schema(recursive), frozenset()) is None
    assert compile_screen(fastavro.parse_schema(mixed), frozenset()) is None
