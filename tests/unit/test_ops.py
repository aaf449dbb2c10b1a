"""Operations describe themselves: the compiler reads their capabilities, never their names."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import fastavro
import pytest

from stream_anon.keys import Keys
from stream_anon.ops import REGISTRY
from stream_anon.ops.base import Apply, AvroType, Operation, register
from stream_anon.rules import SchemaRulesError, compile_plan

KEYS = Keys.generate()


class Reverse(Operation):
    """An operation the compiler has never heard of: strings reversed, output type unchanged."""

    name = "test_reverse"
    accepts = frozenset({"string"})

    def output_type(self) -> AvroType:
        return self.avro

    def build(self) -> Apply:
        return lambda value, ctx: value[::-1]


@pytest.fixture
def reverse() -> Iterator[None]:
    register(Reverse)
    yield
    del REGISTRY[Reverse.name]


def schema(*fields: dict[str, Any]) -> dict[str, Any]:
    return {"type": "record", "name": "R", "fields": list(fields)}


def test_a_registered_operation_compiles_through_containers_without_compiler_changes(reverse: None) -> None:
    plan = compile_plan(
        schema(
            {"name": "a", "type": "string", "anon": "test_reverse"},
            {"name": "b", "type": ["null", {"type": "array", "items": "string"}], "anon": "test_reverse"},
        ),
        KEYS,
    )
    assert plan.apply_batch([{"a": "abc", "b": ["xy", "z"]}, {"a": "", "b": None}]) == [
        {"a": "cba", "b": ["yx", "z"]},
        {"a": "", "b": None},
    ]
    assert {"a", "b[]"} <= plan.generated_paths
    with pytest.raises(SchemaRulesError, match="cannot apply to type int"):
        compile_plan(schema({"name": "n", "type": "int", "anon": "test_reverse"}), KEYS)


def test_every_operation_declares_one_way_of_running() -> None:
    for name, cls in REGISTRY.items():
        ways = [cls.passes_through, cls.removes_field, cls.batched]
        assert sum(ways) <= 1, name
        if not any(ways):
            assert cls.build is not Operation.build, f"{name} must build a per-value function"
        if cls.batched:
            assert cls.build_batch is not Operation.build_batch, name


def test_hmac_of_an_enum_is_a_string_in_the_derived_schema() -> None:
    enum = {"type": "enum", "name": "Channel", "symbols": ["APP", "WEB"]}
    plan = compile_plan(schema({"name": "c", "type": enum, "anon": "hmac"}), KEYS)
    assert plan.derived_schema["fields"][0]["type"] == "string"
    [out] = plan.apply_batch([{"c": "APP"}])
    assert isinstance(out, dict) and out["c"].startswith("hm1.default.")
    fastavro.parse_schema(plan.derived_schema)


def test_redact_of_an_enum_or_fixed_gives_a_schema_that_parses() -> None:
    enum = {"type": "enum", "name": "Channel", "symbols": ["APP", "WEB"]}
    fixed = {"type": "fixed", "name": "Raw", "size": 2}
    plan = compile_plan(
        schema({"name": "c", "type": enum, "anon": "redact"}, {"name": "f", "type": fixed, "anon": "redact"}),
        KEYS,
    )
    fastavro.parse_schema(plan.derived_schema)
    assert plan.apply_batch([{"c": "APP", "f": b"ab"}]) == [{"c": "[REDACTED]", "f": None}]


def test_operations_that_take_no_several_type_union_are_refused_with_those_that_do() -> None:
    with pytest.raises(SchemaRulesError, match="take only drop, keep or redact"):
        compile_plan(schema({"name": "u", "type": ["string", "int"], "anon": "mask"}), KEYS)
