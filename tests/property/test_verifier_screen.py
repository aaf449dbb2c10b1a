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
from stream_anon.keys import Keys
from stream_anon.rules import compile_plan
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
    pii_getters: None = None  # lists its values only (pii_values), does not say where it reads them
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


# A compiled plan says where it reads its raw values, and the screen reads what it seeks of them from the
# record with generated code (``verify.sought_function``): plain ASCII text in line, anything else
# through ``_needle``. Its specification is ``_needle`` over each value ``pii_values`` lists.
SOUGHT_SCHEMA = {
    "type": "record",
    "name": "Raw",
    "namespace": "prop",
    "fields": [
        {"name": "email", "type": ["null", "string"], "pii": "EMAIL_ADDRESS", "anon": "hmac"},
        {"name": "phone", "type": "string", "pii": "PHONE_NUMBER", "anon": "redact"},
        {"name": "account", "type": "long", "pii": "ACCOUNT", "anon": "hmac"},
        {"name": "serial", "type": "bytes", "pii": "DEVICE_ID", "anon": "redact"},
        {
            "name": "user",
            "type": {
                "type": "record",
                "name": "RawUser",
                "fields": [
                    {"name": "name", "type": "string", "pii": "PERSON", "anon": "drop"},
                    {"name": "ssn", "type": ["null", "string"], "pii": "US_SSN", "anon": "redact"},
                    {
                        "name": "phones",
                        "type": {"type": "array", "items": "string"},
                        "pii": "PHONE_NUMBER",
                        "anon": "redact",
                    },
                ],
            },
        },
        {"name": "ids", "type": {"type": "map", "values": "string"}, "pii": "DEVICE_ID", "anon": "redact"},
    ],
}
# Values around every branch: short and long, padded, numbers written many ways, non-ASCII text whose
# normalized or casefolded form differs (full-width letters, a zero-width space, ß, dotted İ).
raw_text = st.sampled_from(
    [
        "", " ", "abc", "abcd", " abcd ", "Jane.Doe@Example.com", "+1 (415) 555-0100", " 415 555 0100 ",
        "555-01", "555-010", "123-45-6789", "Ｊａｎｅ Ｄｏｅ", "an\u200bna", "Straße", "İstanbul",
        "４１５５５５０１００", "u-0001397", "\t\n",
    ]
) | st.text(max_size=12)  # fmt: skip
# Mostly text, the shape a decoder gives; the other shapes a caller's dict may hold.
raw_value = st.one_of(
    raw_text,
    raw_text,
    raw_text,
    st.none() | st.integers() | st.booleans() | st.binary(max_size=6) | st.lists(raw_text, max_size=2),
)
raw_records = st.fixed_dictionaries(
    {
        "email": raw_value,
        "phone": raw_value,
        "account": raw_value,
        "serial": raw_value | raw_text.map(str.encode),
        "user": st.fixed_dictionaries(
            {"name": raw_value, "ssn": raw_value, "phones": st.lists(raw_value, max_size=3)}
        )
        | raw_value,
        "ids": st.dictionaries(raw_text, raw_value, max_size=3) | raw_value,
    },
)
SOUGHT_PLAN = compile_plan(SOUGHT_SCHEMA, Keys.generate())


@settings(max_examples=1000, deadline=None)
@given(raw_records, st.integers(1, 8))
def test_what_the_screen_seeks_of_a_compiled_plan_is_the_needle_of_each_raw_value(
    record: dict[str, Any], min_length: int
) -> None:
    assert SOUGHT_PLAN.pii_getters is not None
    sought = verify_module.sought_function(SOUGHT_PLAN.pii_getters)
    assert sought(record, min_length) == verify_module._sought(SOUGHT_PLAN.pii_values(record), min_length)
