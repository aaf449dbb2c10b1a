"""The schema model: a schema's names and types resolved once into typed nodes, each with its path.

``resolve(schema)`` takes a record schema as JSON, as written (with annotations) or as fastavro parses it,
and gives its ``Record`` node. Every name is resolved here and only here: a reference to a named type
becomes that type's node (a ``Record``, ``Enum`` or ``Fixed``), and a reference to a record that encloses
it becomes a ``Recursive`` node, below which paths are no longer fixed by the schema. ``{"type": {...}}``
wrappers are unwrapped; ``error`` is a record.

Paths use one notation everywhere (rules, verifier, catalog): dotted field names, ``[]`` for array items,
``{}`` for map values (``user.email``, ``tags[]``, ``attrs{}``). A union's branches share its path.

The compiler (``rules.plan``), the verifier's walker and screen (``walk``) and the PII value getters
(``schema.values``) all read these nodes.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass
from typing import Any

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NO_TEXT = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "enum", "fixed"})
"""Kinds whose values are never free text: numbers, bytes, and enum symbols (which the schema fixes)."""


@dataclass(frozen=True, slots=True, eq=False)
class Node:
    """A type at one place in a schema. ``written`` is the type as written there (a named type's
    reference stays its name); ``schema`` is what it resolves to (the definition)."""

    path: str
    written: Any
    schema: Any

    @property
    def kind(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True, slots=True, eq=False)
class Primitive(Node):
    name: str  # null, boolean, int, long, float, double, bytes or string
    logical_type: str | None

    @property
    def kind(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True, eq=False)
class Enum(Node):
    fullname: str

    @property
    def kind(self) -> str:
        return "enum"


@dataclass(frozen=True, slots=True, eq=False)
class Fixed(Node):
    fullname: str

    @property
    def kind(self) -> str:
        return "fixed"


@dataclass(frozen=True, slots=True, eq=False)
class Field:
    """A record's field: its name, its path, its type's node and the field as written (annotations)."""

    name: str
    path: str
    node: Node
    schema: Mapping[str, Any]


@dataclass(frozen=True, slots=True, eq=False)
class Record(Node):
    fullname: str
    fields: tuple[Field, ...]

    @property
    def kind(self) -> str:
        return "record"


@dataclass(frozen=True, slots=True, eq=False)
class Recursive(Node):
    """A reference to a record that encloses it (``schema`` is that record's definition)."""

    fullname: str

    @property
    def kind(self) -> str:
        return "recursive"


@dataclass(frozen=True, slots=True, eq=False)
class Array(Node):
    items: Node

    @property
    def kind(self) -> str:
        return "array"


@dataclass(frozen=True, slots=True, eq=False)
class Map(Node):
    values: Node

    @property
    def kind(self) -> str:
        return "map"


@dataclass(frozen=True, slots=True, eq=False)
class Union(Node):
    branches: tuple[Node, ...]

    @property
    def kind(self) -> str:
        return "union"


@dataclass(frozen=True, slots=True, eq=False)
class Unknown(Node):
    """A name that resolves to no type, or something that is not a type."""

    @property
    def kind(self) -> str:
        return "unknown"


def join(prefix: str, name: str) -> str:
    """The path of field ``name`` in a record at ``prefix``."""
    return f"{prefix}.{name}" if prefix else name


def fullname(name: str, namespace: str | None) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def lookup_name(name: str, namespace: str | None, known: Container[str]) -> str | None:
    """The full name a reference ``name`` written in ``namespace`` means, among ``known`` full names: the
    name in that namespace first (as the specification and fastavro say), then as written (the null
    namespace, as Java's Avro falls back to); None when neither is known."""
    full = fullname(name, namespace)
    if full in known:
        return full
    return name if name in known else None


def named_types(schema: Any) -> dict[str, Any]:
    """Every named type (record, enum, fixed) defined in ``schema``, by full name: its definition."""
    names: dict[str, Any] = {}
    if isinstance(schema, dict):
        names.update(schema.get("__named_schemas", {}))
    _collect_names(schema, None, names)
    return names


def resolve(schema: Any) -> Node:
    """The node of ``schema`` (usually a record), every name resolved."""
    return _Resolver(named_types(schema)).node(schema, "", None, frozenset())


def _collect_names(schema: Any, namespace: str | None, names: dict[str, Any]) -> None:
    if isinstance(schema, list):
        for branch in schema:
            _collect_names(branch, namespace, names)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "error", "enum", "fixed") and isinstance(schema.get("name"), str):
            full = fullname(schema["name"], schema.get("namespace", namespace))
            names.setdefault(full, schema)
            namespace = full.rpartition(".")[0] or None
        if kind in ("record", "error"):
            for field in schema.get("fields", []):
                if isinstance(field, dict):
                    _collect_names(field.get("type"), namespace, names)
        elif kind == "array":
            _collect_names(schema.get("items"), namespace, names)
        elif kind == "map":
            _collect_names(schema.get("values"), namespace, names)
        elif isinstance(kind, dict | list):
            _collect_names(kind, namespace, names)


class _Resolver:
    def __init__(self, names: dict[str, Any]) -> None:
        self.names = names

    def lookup(self, name: str, namespace: str | None) -> Any:
        full = lookup_name(name, namespace, self.names)
        return None if full is None else self.names[full]

    def node(self, written: Any, path: str, namespace: str | None, enclosing: frozenset[str]) -> Node:
        schema = written
        if isinstance(written, str) and written not in PRIMITIVES:
            schema = self.lookup(written, namespace)
            if schema is None:
                return Unknown(path, written, written)
        if isinstance(schema, str):
            return Primitive(path, written, schema, schema, None)
        if isinstance(schema, list):
            branches = tuple(self.node(b, path, namespace, enclosing) for b in schema)
            return Union(path, written, schema, branches)
        if not isinstance(schema, dict):
            return Unknown(path, written, schema)
        kind = schema.get("type")
        if isinstance(kind, dict | list):  # {"type": {"type": "array", ...}}
            return self.node(kind, path, namespace, enclosing)
        if kind in PRIMITIVES:
            return Primitive(path, written, schema, kind, schema.get("logicalType"))
        if kind == "array":
            return Array(
                path, written, schema, self.node(schema.get("items"), f"{path}[]", namespace, enclosing)
            )
        if kind == "map":
            return Map(
                path, written, schema, self.node(schema.get("values"), f"{path}{{}}", namespace, enclosing)
            )
        if kind in ("record", "error", "enum", "fixed"):
            full = fullname(str(schema.get("name", "")), schema.get("namespace", namespace))
            if kind == "enum":
                return Enum(path, written, schema, full)
            if kind == "fixed":
                return Fixed(path, written, schema, full)
            if full in enclosing:
                return Recursive(path, written, schema, full)
            inner_ns = full.rpartition(".")[0] or None
            fields = tuple(
                self.field(f, path, inner_ns, enclosing | {full}) for f in schema.get("fields", []) or []
            )
            return Record(path, written, schema, full, fields)
        if isinstance(kind, str) and kind not in PRIMITIVES:  # {"type": "SomeName"}
            return self.node(kind, path, namespace, enclosing)
        return Unknown(path, written, schema)

    def field(self, field: Any, path: str, namespace: str | None, enclosing: frozenset[str]) -> Field:
        if not isinstance(field, dict):
            return Field("", path, Unknown(path, field, field), {})
        name = str(field.get("name"))
        fpath = join(path, name)
        return Field(name, fpath, self.node(field.get("type"), fpath, namespace, enclosing), field)
