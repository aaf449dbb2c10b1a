"""Copies of a schema as JSON with some attributes removed at every level."""

from __future__ import annotations

from collections.abc import Set
from typing import Any

ANNOTATIONS = frozenset({"anon", "pii", "anon.default"})
"""The attributes the rules read from a field or record; a derived schema carries none of them."""
TAGS = "confluent:tags"
"""A field's tags, which a tag policy maps to rules."""
_ANNOTATIONS_AND_TAGS = ANNOTATIONS | {TAGS}


def without_keys(schema: Any, keys: Set[str]) -> Any:
    """A copy of a JSON schema with the attributes named in ``keys`` removed at every level."""
    if isinstance(schema, dict):
        return {k: without_keys(v, keys) for k, v in schema.items() if k not in keys}
    if isinstance(schema, list):
        return [without_keys(s, keys) for s in schema]
    return schema


_LOGICAL_TYPE = frozenset({"logicalType"})


def strip_logical_types(schema: Any) -> Any:
    """A copy of a JSON schema with ``logicalType`` removed, so values keep their underlying Avro type."""
    return without_keys(schema, _LOGICAL_TYPE)


def strip_annotations(schema: Any) -> Any:
    """A copy of a JSON schema without the rules' annotations (``anon``, ``pii``, ...) and tags."""
    return without_keys(schema, _ANNOTATIONS_AND_TAGS)
