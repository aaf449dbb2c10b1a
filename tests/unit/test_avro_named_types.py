"""Issue 22, item 1 (continued): a named type (enum, fixed, record) whose definition sits inside a field
the rules remove (``drop``) or whose type an operation replaces (``hmac``, ``redact``), used by name in a
field that is kept. The derived schema defines the type at its first use that remains; every derived
schema parses and its outputs fit it, through the plan, file mode (``anonymize``) and the worker's
pipeline. What cannot be written is refused by ``lint`` with the field's path."""

from __future__ import annotations

import copy
import io
import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastavro
import pytest
from click.testing import CliRunner
from kafkatools import Framer

from stream_anon.app import CompileOnlyScanner
from stream_anon.cli import main
from stream_anon.keys import Keys
from stream_anon.pipeline import Pipeline
from stream_anon.records import InputRecord, Sanitized
from stream_anon.rules import SchemaRulesError, compile_plan
from stream_anon.rules.plan import RuleFailure
from stream_anon.schema import resolve
from stream_anon.schema.jsonform import from_json, to_json
from stream_anon.schemas import DirectorySchemas, SchemaResolver
from stream_anon.verify import Verifier
from stream_anon.wire import decode_payload, parse_frame

KEYS = Keys.generate()

# (kind, definition, value, operations that remove the definition from the derived schema)
TIER = {"type": "enum", "name": "Tier", "symbols": ["GOLD", "SILVER"]}
CODE = {"type": "fixed", "name": "Code", "size": 4}
ADDRESS = {
    "type": "record",
    "name": "Address",
    "fields": [{"name": "city", "type": "string", "anon": "keep"}],
}
NAMED: list[tuple[str, dict[str, Any], Any, list[str]]] = [
    ("enum", TIER, "GOLD", ["drop", "hmac", "redact"]),
    ("fixed", CODE, b"abcd", ["drop", "hmac", "redact"]),
    ("record", ADDRESS, {"city": "Berlin"}, ["drop"]),
]

# A type wrapped where a field uses it: (name, wrap(type, op, box name) -> (field's type, field's anon),
# value of the field from the type's value). In a record, the operation is on the inner field.
Wrap = Callable[[Any, str, str], tuple[Any, str | None]]


def _plain(t: Any, op: str, box: str) -> tuple[Any, str | None]:
    return t, op


def _in_record(t: Any, op: str, box: str) -> tuple[Any, str | None]:
    fields = [{"name": "v", "type": t, "anon": op}, {"name": "n", "type": "int", "anon": "keep"}]
    return {"type": "record", "name": box, "fields": fields}, None


def _in_array(t: Any, op: str, box: str) -> tuple[Any, str | None]:
    return {"type": "array", "items": t}, op


def _in_map(t: Any, op: str, box: str) -> tuple[Any, str | None]:
    return {"type": "map", "values": t}, op


def _in_union(t: Any, op: str, box: str) -> tuple[Any, str | None]:
    return ["null", t], op


WRAPS: dict[str, tuple[Wrap, Callable[[Any], Any]]] = {
    "plain": (_plain, lambda v: v),
    "record": (_in_record, lambda v: {"v": v, "n": 1}),
    "array": (_in_array, lambda v: [v, v]),
    "map": (_in_map, lambda v: {"k": v}),
    "union": (_in_union, lambda v: v),
}


def field(name: str, wrap: str, t: Any, op: str) -> dict[str, Any]:
    typ, anon = WRAPS[wrap][0](t, op, f"Box_{name}")
    return {"name": name, "type": typ, **({"anon": anon} if anon else {})}


def case(
    kind: str, op: str, removed_wrap: str, kept_wrap: str, removed_first: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A schema whose field ``gone`` is removed or replaced by ``op`` and ``kept`` is kept, one of them
    holding the type's definition (the first written) and the other its name; and a record of it."""
    _, definition, value, _ = next(n for n in NAMED if n[0] == kind)
    first_type, later_type = copy.deepcopy(definition), definition["name"]
    gone_type, kept_type = (first_type, later_type) if removed_first else (later_type, first_type)
    gone = field("gone", removed_wrap, gone_type, op)
    kept = field("kept", kept_wrap, kept_type, "keep")
    fields = [gone, kept] if removed_first else [kept, gone]
    fields.append({"name": "id", "type": "string", "anon": "keep"})
    schema = {"type": "record", "name": "Top", "namespace": "t", "fields": fields}
    record = {
        "gone": WRAPS[removed_wrap][1](value),
        "kept": WRAPS[kept_wrap][1](value),
        "id": "a-1",
    }
    return schema, record


CASES = [
    (kind, op, removed_wrap, kept_wrap, removed_first)
    for kind, _, _, ops in NAMED
    for op in ops
    for removed_wrap, kept_wrap in itertools.product(WRAPS, WRAPS)
    for removed_first in (True, False)
]


def roundtrip(record: dict[str, Any], derived: dict[str, Any]) -> dict[str, Any]:
    """Written and read back with the derived schema, logical types included (as a consumer reads it)."""
    parsed = fastavro.parse_schema(copy.deepcopy(derived))
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed, record)
    buffer.seek(0)
    read = fastavro.schemaless_reader(buffer, parsed)
    assert isinstance(read, dict)
    return read


@pytest.mark.parametrize(("kind", "op", "removed_wrap", "kept_wrap", "removed_first"), CASES)
def test_the_kept_use_of_a_named_type_is_defined_in_the_derived_schema(
    kind: str, op: str, removed_wrap: str, kept_wrap: str, removed_first: bool
) -> None:
    schema, record = case(kind, op, removed_wrap, kept_wrap, removed_first)
    plan = compile_plan(schema, KEYS)
    (out,) = plan.apply_batch([copy.deepcopy(record)])
    assert not isinstance(out, RuleFailure), out
    assert fastavro.validation.validate(out, plan.parsed_derived)
    assert roundtrip(out, plan.derived_schema)["kept"] == record["kept"]
    assert out["kept"] == record["kept"] and out["id"] == "a-1"


NAMESPACED = {
    "type": "record",
    "name": "Top",
    "namespace": "t",
    "fields": [
        {
            "name": "gone",
            "type": {
                "type": "record",
                "name": "Profile",
                "namespace": "other.ns",
                "fields": [
                    {"name": "tier", "type": TIER, "anon": "keep"},
                    {"name": "home", "type": ADDRESS},
                    {"name": "code", "type": CODE, "anon": "keep"},
                ],
            },
            "anon": "drop",
        },
        # Written in namespace t, these names need their own namespace (other.ns) where they now live.
        {"name": "tiers", "type": {"type": "array", "items": "other.ns.Tier"}, "anon": "keep"},
        {"name": "home", "type": "other.ns.Address"},
        {"name": "profile", "type": "other.ns.Profile", "anon": "keep"},
    ],
}


def test_a_definition_moved_out_of_its_namespace_keeps_its_full_name_and_the_names_inside_it() -> None:
    plan = compile_plan(NAMESPACED, KEYS)
    derived = plan.derived_schema
    assert derived["fields"][0]["type"]["items"] == {**TIER, "namespace": "other.ns"}
    profile = derived["fields"][2]["type"]
    assert profile["name"] == "Profile" and profile["namespace"] == "other.ns"
    # Tier and Address are defined before Profile now: inside it they are names.
    assert [f["type"] for f in profile["fields"]][:2] == ["other.ns.Tier", "other.ns.Address"]
    record = {
        "tiers": ["SILVER"],
        "home": {"city": "Oslo"},
        "profile": {"tier": "GOLD", "home": {"city": "Rome"}, "code": b"wxyz"},
        "gone": {"tier": "GOLD", "home": {"city": "Rome"}, "code": b"wxyz"},
    }
    (out,) = plan.apply_batch([record])
    assert isinstance(out, dict)
    assert roundtrip(out, derived) == {k: v for k, v in record.items() if k != "gone"}


NODE = {
    "type": "record",
    "name": "Node",
    "fields": [
        {"name": "tier", "type": TIER},
        {"name": "label", "type": "string"},
        {"name": "next", "type": ["null", "Node"]},
    ],
}
TREE = {
    "type": "record",
    "name": "Tree",
    "fields": [
        {"name": "tier", "type": "Tier"},
        {"name": "children", "type": {"type": "array", "items": "Tree"}},
    ],
}


def test_a_recursive_type_defined_in_a_dropped_field_is_defined_at_its_kept_use() -> None:
    schema = {
        "type": "record",
        "name": "Top",
        "namespace": "t",
        "fields": [
            {"name": "gone", "type": NODE, "anon": "drop"},
            {"name": "tier", "type": "Tier", "anon": "keep"},
            {"name": "chain", "type": ["null", "Node"], "anon": "keep"},
            {"name": "tree", "type": TREE, "anon": "keep"},
        ],
    }
    plan = compile_plan(schema, KEYS)
    chain = {"tier": "GOLD", "label": "a", "next": {"tier": "SILVER", "label": "b", "next": None}}
    tree = {"tier": "GOLD", "children": [{"tier": "SILVER", "children": []}]}
    record = {"gone": chain, "tier": "SILVER", "chain": chain, "tree": tree}
    (out,) = plan.apply_batch([copy.deepcopy(record)])
    assert isinstance(out, dict)
    assert roundtrip(out, plan.derived_schema) == {"tier": "SILVER", "chain": chain, "tree": tree}


def test_a_recursive_type_anonymized_field_by_field_after_its_definition_was_dropped() -> None:
    # Every field of the record kept but one that holds no copy of itself: its kept self-reference
    # carries only kept values, so it is representable; the enum inside goes with it.
    node = {
        "type": "record",
        "name": "Node",
        "fields": [
            {"name": "tier", "type": TIER, "anon": "keep"},
            {"name": "next", "type": ["null", "Node"], "anon": "keep"},
        ],
    }
    schema = {
        "type": "record",
        "name": "Top",
        "namespace": "t",
        "fields": [
            {"name": "gone", "type": node, "anon": "drop"},
            {"name": "chain", "type": "Node"},
            {"name": "tier", "type": "Tier", "anon": "hmac"},
        ],
    }
    plan = compile_plan(schema, KEYS)
    chain = {"tier": "GOLD", "next": {"tier": "SILVER", "next": None}}
    (out,) = plan.apply_batch([{"gone": chain, "chain": chain, "tier": "GOLD"}])
    assert isinstance(out, dict) and out["tier"].startswith("hm1.")
    assert roundtrip(out, plan.derived_schema)["chain"] == chain


# --- what cannot be written: refused with the path, by lint too -------------------------------------


def refusals(schema: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(SchemaRulesError) as caught:
        compile_plan(schema, KEYS)
    return [(p.path, p.message) for p in caught.value.problems]


USER = {
    "type": "record",
    "name": "User",
    "fields": [{"name": "email", "type": "string", "pii": "EMAIL_ADDRESS", "anon": "hmac"}],
}


def test_a_record_defined_inside_a_kept_record_and_anonymized_later_is_refused_with_its_path() -> None:
    # The kept record carries User's raw definition; the later use would need a second one.
    card = {"type": "record", "name": "Card", "fields": [{"name": "owner", "type": USER}]}
    schema = {
        "type": "record",
        "name": "Top",
        "namespace": "t",
        "fields": [{"name": "card", "type": card, "anon": "keep"}, {"name": "author", "type": "User"}],
    }
    [(path, message)] = refusals(schema)
    assert path == "author" and "also used at card.owner (kept whole)" in message


def test_a_record_anonymized_first_and_kept_inside_a_later_kept_record_is_refused_with_its_path() -> None:
    card = {"type": "record", "name": "Card", "fields": [{"name": "owner", "type": "User"}]}
    schema = {
        "type": "record",
        "name": "Top",
        "namespace": "t",
        "fields": [{"name": "author", "type": USER}, {"name": "card", "type": card, "anon": "keep"}],
    }
    [(path, message)] = refusals(schema)
    assert path == "card" and "record t.User is kept whole here (inside t.Card)" in message


def test_lint_refuses_what_cannot_be_written_with_the_path_and_no_traceback(tmp_path: Path) -> None:
    card = {"type": "record", "name": "Card", "fields": [{"name": "owner", "type": USER}]}
    schema = {
        "type": "record",
        "name": "Top",
        "namespace": "t",
        "fields": [{"name": "card", "type": card, "anon": "keep"}, {"name": "author", "type": "User"}],
    }
    path = tmp_path / "top.avsc"
    path.write_text(json.dumps(schema))
    result = CliRunner().invoke(main, ["lint", str(path)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert f"{path}: author: invalid_rule: record t.User is also used at card.owner" in result.output
    assert "Traceback" not in result.output


# --- through the commands and the worker's pipeline ------------------------------------------------------

# One case per kind and operation, wrapped alike on both sides, both orders.
COMMAND_CASES = [c for c in CASES if c[2] == c[3]]


def write(tmp_path: Path, schema: dict[str, Any]) -> Path:
    path = tmp_path / "schema.avsc"
    path.write_text(json.dumps(schema))
    return path


@pytest.mark.parametrize(("kind", "op", "removed_wrap", "kept_wrap", "removed_first"), COMMAND_CASES)
def test_lint_derive_and_anonymize_agree_on_the_derived_schema(
    tmp_path: Path, kind: str, op: str, removed_wrap: str, kept_wrap: str, removed_first: bool
) -> None:
    schema, record = case(kind, op, removed_wrap, kept_wrap, removed_first)
    path = write(tmp_path, schema)
    runner = CliRunner()
    assert runner.invoke(main, ["lint", str(path)]).exit_code == 0
    derived_run = runner.invoke(main, ["schemas", "derive", str(path)])
    assert derived_run.exit_code == 0, derived_run.output
    derived = json.loads(derived_run.output)
    keys = tmp_path / "keys.json"
    KEYS.save(keys)
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps(record, default=to_json) + "\n")
    out = tmp_path / "out.jsonl"
    result = runner.invoke(
        main,
        ["anonymize", "--schema", str(path), "--keys", str(keys), "--input", str(data), "--output", str(out)],
    )
    assert result.exit_code == 0, result.output
    (line,) = out.read_text().splitlines()
    written = from_json(resolve(derived), json.loads(line))
    assert fastavro.validation.validate(written, fastavro.parse_schema(copy.deepcopy(derived)))
    assert roundtrip(written, derived)["kept"] == record["kept"]


@pytest.mark.parametrize(("kind", "op", "removed_wrap", "kept_wrap", "removed_first"), COMMAND_CASES)
def test_the_workers_pipeline_writes_outputs_its_derived_schema_reads(
    tmp_path: Path, kind: str, op: str, removed_wrap: str, kept_wrap: str, removed_first: bool
) -> None:
    schema, record = case(kind, op, removed_wrap, kept_wrap, removed_first)
    write(tmp_path, schema)
    resolver = SchemaResolver(DirectorySchemas(tmp_path), None)
    pipeline = Pipeline(
        resolver=resolver,
        compile_plan=lambda s: compile_plan(s, KEYS, scanner=CompileOnlyScanner()),
        verifier=Verifier(),
        output_topic="out",
    )
    (outcome,) = pipeline.process([InputRecord("raw", 0, 0, 0, None, Framer(schema)(record))])
    assert isinstance(outcome, Sanitized), outcome
    framing, ident, start = parse_frame(outcome.value)
    derived = resolver.lookup(framing, ident)
    decoded = decode_payload(outcome.value, start, derived.parsed, derived.ref)
    assert decoded["kept"] == record["kept"] and decoded["id"] == "a-1"


def test_definitions_deep_inside_a_removed_field_reach_kept_uses_deep_inside_others() -> None:
    holder = {
        "type": "record",
        "name": "Holder",
        "fields": [
            {"name": "tier", "type": TIER, "anon": "keep"},
            {"name": "code", "type": ["null", CODE], "anon": "keep"},
            {"name": "where", "type": ADDRESS},
        ],
    }
    nested_use = {
        "type": "record",
        "name": "Use",
        "fields": [
            {"name": "codes", "type": {"type": "map", "values": ["null", "Code"]}, "anon": "keep"},
            {"name": "places", "type": {"type": "array", "items": "Address"}, "anon": "keep"},
            {"name": "tier", "type": ["null", "Tier"], "anon": "hmac"},
            {"name": "again", "type": "Tier", "anon": "keep"},
        ],
    }
    schema = {
        "type": "record",
        "name": "Top",
        "namespace": "t",
        "fields": [
            {
                "name": "gone",
                "type": {"type": "map", "values": {"type": "array", "items": holder}},
                "anon": "drop",
            },
            {"name": "use", "type": ["null", nested_use]},
        ],
    }
    plan = compile_plan(schema, KEYS)
    use = {
        "codes": {"a": b"wxyz", "b": None},
        "places": [{"city": "Oslo"}],
        "tier": "GOLD",
        "again": "SILVER",
    }
    held = {"tier": "GOLD", "code": None, "where": {"city": "Rome"}}
    (out,) = plan.apply_batch([{"gone": {"k": [held]}, "use": use}])
    assert isinstance(out, dict) and out["use"]["tier"].startswith("hm1.")
    read = roundtrip(out, plan.derived_schema)["use"]
    assert read["codes"] == use["codes"] and read["places"] == use["places"] and read["again"] == "SILVER"
