"""Issue 22: Avro features one at a time, each handled (outputs fit the derived schema) or refused by
``lint`` with the field path, never a traceback."""

from __future__ import annotations

from typing import Any

import fastavro
import pytest

from stream_anon.keys import Keys
from stream_anon.rules import SchemaRulesError, compile_plan
from stream_anon.rules.plan import RuleFailure

KEYS = Keys.generate()


def record_schema(*fields: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "record", "name": "R", "namespace": "t", "fields": list(fields), **extra}


def sanitized(schema: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """The record through the compiled plan, checked against the derived schema."""
    plan = compile_plan(schema, KEYS)
    (out,) = plan.apply_batch([record])
    assert not isinstance(out, RuleFailure), out
    assert fastavro.validation.validate(out, plan.parsed_derived)
    return out


def problems(schema: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(SchemaRulesError) as caught:
        compile_plan(schema, KEYS)
    return [(p.path, p.code) for p in caught.value.problems]


USER = {
    "type": "record",
    "name": "User",
    "fields": [
        {"name": "email", "type": "string", "pii": "EMAIL_ADDRESS"},
        {"name": "country", "type": "string"},
    ],
}


# --- item 3: record-level anon.default ---------------------------------------------------------------


def test_a_record_default_of_keep_does_not_keep_a_nested_record_whole() -> None:
    # The nested record's unannotated PII field must meet the strict check, not ride along with keep.
    schema = record_schema(
        {"name": "id", "type": "string"}, {"name": "user", "type": USER}, **{"anon.default": "keep"}
    )
    assert problems(schema) == [("user.email", "unannotated_field"), ("user.country", "unannotated_field")]


def test_a_record_default_reaches_its_own_leaves_and_nested_records_use_their_own() -> None:
    user = {
        **USER,
        "anon.default": "keep",
        "fields": [{**USER["fields"][0], "anon": "hmac"}, USER["fields"][1]],
    }
    schema = record_schema(
        {"name": "id", "type": "string"},
        {"name": "users", "type": {"type": "array", "items": user}},
        **{"anon.default": "hmac"},
    )
    out = sanitized(schema, {"id": "a-1", "users": [{"email": "jo@example.com", "country": "DE"}]})
    assert out["id"].startswith("hm1.")
    assert out["users"][0]["email"].startswith("hm1.") and out["users"][0]["country"] == "DE"


@pytest.mark.parametrize("default", ["redact", "mask", "hmac", "tokenize", "drop"])
def test_any_record_default_compiles_or_is_refused_with_paths(default: str) -> None:
    schema = record_schema(
        {"name": "id", "type": "string"},
        {"name": "n", "type": "int"},
        {"name": "flag", "type": "boolean"},
        {"name": "user", "type": {**USER, "anon.default": "drop"}},
        **{"anon.default": default},
    )
    try:
        plan = compile_plan(schema, KEYS)
    except SchemaRulesError as exc:
        assert exc.problems and all(p.path in {"id", "n", "flag"} for p in exc.problems)
        return
    (out,) = plan.apply_batch(
        [{"id": "a", "n": 1, "flag": True, "user": {"email": "j@x.io", "country": "DE"}}]
    )
    assert not isinstance(out, RuleFailure)
    assert fastavro.validation.validate(out, plan.parsed_derived)


# --- item 4: named records used twice, recursive types -------------------------------------------------

ANNOTATED_USER = {
    **USER,
    "fields": [{**USER["fields"][0], "anon": "hmac"}, {**USER["fields"][1], "anon": "keep"}],
}


def test_a_named_record_kept_after_an_annotated_use_is_refused_with_its_path() -> None:
    schema = record_schema(
        {"name": "author", "type": ANNOTATED_USER}, {"name": "reviewer", "type": "t.User", "anon": "keep"}
    )
    assert problems(schema) == [("reviewer", "invalid_rule")]


def test_a_named_record_kept_first_and_annotated_later_is_refused_not_a_traceback() -> None:
    # Before: fastavro's "redefined named type" traceback from the derived schema.
    schema = record_schema(
        {"name": "reviewer", "type": USER, "anon": "keep"}, {"name": "author", "type": "t.User"}
    )
    assert problems(schema) == [("author", "invalid_rule")]


def test_a_named_record_kept_twice_is_defined_once() -> None:
    schema = record_schema(
        {"name": "a", "type": USER, "anon": "keep"}, {"name": "b", "type": "t.User", "anon": "keep"}
    )
    user = {"email": "j@x.io", "country": "DE"}
    assert sanitized(schema, {"a": user, "b": user}) == {"a": user, "b": user}


NODE = {
    "type": "record",
    "name": "Node",
    "namespace": "t",
    "fields": [
        {"name": "label", "type": "string", "pii": "PERSON", "anon": "hmac"},
        {"name": "next", "type": ["null", "Node"], "anon": "keep"},
    ],
}


def test_a_recursive_type_kept_inside_its_anonymized_self_is_refused_with_its_path() -> None:
    assert problems(NODE) == [("next", "invalid_rule")]


def test_a_recursive_type_kept_inside_an_unchanged_self_is_handled() -> None:
    schema = {**NODE, "fields": [{**NODE["fields"][0], "anon": "keep"}, NODE["fields"][1]]}
    record = {"label": "a", "next": {"label": "b", "next": None}}
    assert sanitized(schema, record) == record


def test_a_recursive_type_annotated_field_by_field_is_refused_with_a_clear_message() -> None:
    schema = {**NODE, "fields": [NODE["fields"][0], {"name": "next", "type": ["null", "Node"]}]}
    with pytest.raises(SchemaRulesError, match="contains itself") as caught:
        compile_plan(schema, KEYS)
    assert [p.path for p in caught.value.problems] == ["next"]
