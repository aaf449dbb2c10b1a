"""Generated schemas whose fields use named types (enum, fixed, record, a record holding an enum) defined
at their first use, in containers, under every operation they take: each compiles to a derived schema
that parses and fits its output, or is refused with the fields' paths, never anything else (issue 22)."""

from __future__ import annotations

import copy
import io
from typing import Any

import fastavro
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_anon.keys import Keys
from stream_anon.rules import SchemaRulesError, compile_plan
from stream_anon.rules.plan import RuleFailure

KEYS = Keys.generate()
NAMES = ["Tier", "Code", "Address", "Level"]
OPERATIONS = {
    "Tier": ["keep", "drop", "hmac", "redact"],
    "Code": ["keep", "drop", "hmac", "redact"],
    "Level": ["keep", "drop", "hmac", "redact"],
    "Address": ["keep", "drop", None],  # None: field by field, with the record's own annotations
}
VALUES = {"Tier": "GOLD", "Code": b"wxyz", "Level": "L2"}
WRAPS = ["plain", "array", "map", "union"]


class Schema:
    """Builds one writer schema: each named type is defined where it is first written."""

    def __init__(self, level_op: str) -> None:
        self.defined: set[str] = set()
        self.level_op = level_op

    def named(self, name: str) -> Any:
        if name in self.defined:
            return name
        self.defined.add(name)
        if name == "Tier":
            return {"type": "enum", "name": "Tier", "symbols": ["GOLD", "SILVER"]}
        if name == "Code":
            return {"type": "fixed", "name": "Code", "size": 4}
        if name == "Level":
            return {"type": "enum", "name": "Level", "symbols": ["L1", "L2"]}
        fields = [
            {"name": "city", "type": "string", "anon": "keep"},
            {"name": "level", "type": self.named("Level"), "anon": self.level_op},
        ]
        return {"type": "record", "name": "Address", "fields": fields}


def value_of(name: str) -> Any:
    return {"city": "Oslo", "level": "L1"} if name == "Address" else VALUES[name]


def wrapped(wrap: str, written: Any, value: Any) -> tuple[Any, Any]:
    if wrap == "array":
        return {"type": "array", "items": written}, [value, value]
    if wrap == "map":
        return {"type": "map", "values": written}, {"a": value}
    if wrap == "union":
        return ["null", written], value
    return written, value


fields_drawn = st.lists(
    st.tuples(st.sampled_from(NAMES), st.sampled_from(WRAPS), st.integers(0, 3)), min_size=2, max_size=5
)


@settings(max_examples=300, deadline=None)
@given(fields_drawn, st.sampled_from(["keep", "hmac", "drop"]))
def test_every_schema_of_named_types_is_handled_or_refused_with_paths(
    drawn: list[tuple[str, str, int]], level_op: str
) -> None:
    builder = Schema(level_op)
    fields: list[dict[str, Any]] = []
    record: dict[str, Any] = {}
    for i, (name, wrap, op_index) in enumerate(drawn):
        ops = OPERATIONS[name]
        op = ops[op_index % len(ops)]
        written, value = wrapped(wrap, builder.named(name), value_of(name))
        field: dict[str, Any] = {"name": f"f{i}", "type": written}
        if op is not None:
            field["anon"] = op
        fields.append(field)
        record[f"f{i}"] = value
    schema = {"type": "record", "name": "Top", "namespace": "t", "fields": fields}
    try:
        plan = compile_plan(copy.deepcopy(schema), KEYS)
    except SchemaRulesError as exc:
        names = {f["name"] for f in fields}
        assert exc.problems and all(p.path.split(".")[0].rstrip("[]{}") in names for p in exc.problems)
        return
    (out,) = plan.apply_batch([copy.deepcopy(record)])
    assert not isinstance(out, RuleFailure), out
    assert fastavro.validation.validate(out, plan.parsed_derived)
    parsed = fastavro.parse_schema(copy.deepcopy(plan.derived_schema))
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed, out)
    buffer.seek(0)
    assert fastavro.schemaless_reader(buffer, parsed) == out
