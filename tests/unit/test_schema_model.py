"""The schema model resolves every name once and gives each type its path."""

from __future__ import annotations

import fastavro
import pytest

from stream_anon.schema import Array, Enum, Map, Primitive, Record, Recursive, Union, Unknown, resolve

SCHEMA = {
    "type": "record",
    "name": "Outer",
    "namespace": "com.example",
    "fields": [
        {
            "name": "home",
            "type": {
                "type": "record",
                "name": "Address",
                "fields": [{"name": "street", "type": "string"}],
            },
        },
        {"name": "work", "type": ["null", "Address"]},  # a reference, resolved in the namespace
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "attrs", "type": {"type": "map", "values": {"type": "enum", "name": "E", "symbols": ["A"]}}},
        {"name": "wrapped", "type": {"type": {"type": "array", "items": "long"}}},
        {"name": "when", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "next", "type": ["null", "com.example.Outer"]},
        {"name": "odd", "type": "NoSuchType"},
    ],
}


def test_paths_and_kinds() -> None:
    root = resolve(SCHEMA)
    assert isinstance(root, Record) and root.fullname == "com.example.Outer"
    nodes = {f.name: f.node for f in root.fields}
    home = nodes["home"]
    assert isinstance(home, Record) and home.fields[0].path == "home.street"
    work = nodes["work"]
    assert isinstance(work, Union)
    address = work.branches[1]
    assert isinstance(address, Record) and address.written == "Address"
    assert address.fields[0].path == "work.street"  # a named type reused gets the paths of its place
    tags = nodes["tags"]
    assert isinstance(tags, Array) and tags.items.path == "tags[]"
    attrs = nodes["attrs"]
    assert isinstance(attrs, Map) and isinstance(attrs.values, Enum) and attrs.values.path == "attrs{}"
    wrapped = nodes["wrapped"]
    assert isinstance(wrapped, Array) and wrapped.items.kind == "long"
    when = nodes["when"]
    assert isinstance(when, Primitive) and (when.name, when.logical_type) == ("long", "timestamp-millis")
    recursive = nodes["next"]
    assert isinstance(recursive, Union) and isinstance(recursive.branches[1], Recursive)
    assert isinstance(nodes["odd"], Unknown)


def test_the_parsed_form_resolves_to_the_same_paths() -> None:
    written = {**SCHEMA, "fields": [f for f in SCHEMA["fields"] if f["name"] not in ("odd", "wrapped")]}
    parsed = fastavro.parse_schema(written)

    def paths(node: object) -> list[str]:
        out: list[str] = []
        if isinstance(node, Record):
            for f in node.fields:
                out += [f.path, *paths(f.node)]
        elif isinstance(node, Union):
            for b in node.branches:
                out += paths(b)
        elif isinstance(node, Array):
            out += paths(node.items)
        elif isinstance(node, Map):
            out += paths(node.values)
        return out

    assert paths(resolve(parsed)) == paths(resolve(written))


# --- where a derived schema defines its named types --------------------------------------------------

TIER = {"type": "enum", "name": "Tier", "namespace": "a", "symbols": ["GOLD"]}


def test_a_name_whose_definition_is_gone_is_defined_at_its_first_use_and_named_after() -> None:
    from stream_anon.schema.definitions import define_at_first_use

    derived = {
        "type": "record",
        "name": "Top",
        "namespace": "t",
        "fields": [
            {"name": "one", "type": {"type": "array", "items": "a.Tier"}},
            {"name": "two", "type": ["null", "a.Tier"]},
        ],
    }
    placed = define_at_first_use(derived, {"a.Tier": TIER})
    assert placed["fields"][0]["type"]["items"] == TIER and placed["fields"][1]["type"] == ["null", "a.Tier"]
    assert derived["fields"][0]["type"]["items"] == "a.Tier"  # a copy: the input is left as it was
    fastavro.parse_schema(placed)


def test_a_definition_moved_into_another_namespace_writes_its_own() -> None:
    from stream_anon.schema.definitions import define_at_first_use

    inner = {"type": "enum", "name": "Tier", "symbols": ["GOLD"]}  # written inside namespace a: a.Tier
    derived = {"type": "record", "name": "Top", "namespace": "t", "fields": [{"name": "x", "type": "a.Tier"}]}
    placed = define_at_first_use(derived, {"a.Tier": inner})
    assert placed["fields"][0]["type"] == {
        "type": "enum",
        "name": "Tier",
        "namespace": "a",
        "symbols": ["GOLD"],
    }
    assert fastavro.parse_schema(placed)["fields"][0]["type"]["name"] == "a.Tier"


def test_an_unknown_name_or_two_different_definitions_are_problems_with_their_paths() -> None:
    from stream_anon.schema.definitions import DefinitionProblem, define_at_first_use

    unknown = {
        "type": "record",
        "name": "Top",
        "fields": [{"name": "m", "type": {"type": "map", "values": "Nope"}}],
    }
    with pytest.raises(DefinitionProblem) as caught:
        define_at_first_use(unknown, {})
    assert (caught.value.path, caught.value.message) == ("m{}", "unknown type Nope")
    twice = {
        "type": "record",
        "name": "Top",
        "fields": [{"name": "a", "type": "a.Tier"}, {"name": "b", "type": {**TIER, "symbols": ["OTHER"]}}],
    }
    with pytest.raises(DefinitionProblem) as caught:
        define_at_first_use(twice, {"a.Tier": TIER})
    assert caught.value.path == "b" and "two different definitions" in caught.value.message
    same = {
        "type": "record",
        "name": "Top",
        "fields": [{"name": "a", "type": "a.Tier"}, {"name": "b", "type": TIER}],
    }
    assert define_at_first_use(same, {"a.Tier": TIER})["fields"][1]["type"] == "a.Tier"


def test_a_short_name_means_the_type_in_the_enclosing_namespace_first() -> None:
    schema = {
        "type": "record",
        "name": "R",
        "namespace": "a",
        "fields": [
            {"name": "x", "type": {"type": "enum", "name": "E", "namespace": "", "symbols": ["N"]}},
            {"name": "y", "type": {"type": "enum", "name": "E", "symbols": ["A"]}},
            {"name": "z", "type": "E"},
        ],
    }
    root = resolve(schema)
    assert isinstance(root, Record)
    z = root.fields[2].node
    assert isinstance(z, Enum) and z.fullname == "a.E"  # as fastavro reads it
    assert fastavro.parse_schema(schema)["fields"][2]["type"] == "a.E"
