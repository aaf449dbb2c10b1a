"""The schema model resolves every name once and gives each type its path."""

from __future__ import annotations

import fastavro

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
