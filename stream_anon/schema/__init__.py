"""The schema model: Avro schemas as JSON, resolved once into typed nodes with paths (``model``), the
values at a path (``values``), and the one helper for generated per-schema functions (``codegen``)."""

from stream_anon.schema.json import ANNOTATIONS, TAGS, strip_annotations, strip_logical_types, without_keys
from stream_anon.schema.model import (
    NO_TEXT,
    PRIMITIVES,
    Array,
    Enum,
    Field,
    Fixed,
    Map,
    Node,
    Primitive,
    Record,
    Recursive,
    Union,
    Unknown,
    join,
    resolve,
)

__all__ = [
    "ANNOTATIONS",
    "NO_TEXT",
    "PRIMITIVES",
    "TAGS",
    "Array",
    "Enum",
    "Field",
    "Fixed",
    "Map",
    "Node",
    "Primitive",
    "Record",
    "Recursive",
    "Union",
    "Unknown",
    "join",
    "resolve",
    "strip_annotations",
    "strip_logical_types",
    "without_keys",
]
