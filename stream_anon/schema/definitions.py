"""Where a derived schema defines its named types: at their first use that remains.

Avro defines a named type (record, enum, fixed) once, where it is first written, and refers to it by name
after. A derived schema loses the definitions written inside fields the rules remove (``drop``) or whose
type an operation replaces (``hmac`` on an enum), while a later kept field may still refer to the type by
name. ``define_at_first_use`` writes each such definition back at the first use that remains, and leaves
a name everywhere after. Names are read with the schema model's rules (``model.lookup_name``).

A definition moved out of its namespace gets that namespace written out, so its full name, and the names
written inside it, keep their meaning; every other part of the schema keeps the namespace it had.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stream_anon.schema.model import PRIMITIVES, fullname, join, lookup_name

_NAMED = ("record", "error", "enum", "fixed")


class DefinitionProblem(Exception):
    """A derived schema's name that cannot be written: ``path`` is the field's, as the rules name it."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def define_at_first_use(schema: Any, definitions: Mapping[str, Any]) -> Any:
    """A copy of ``schema`` in which each named type it uses is defined at its first use, and referred
    to by name after. ``definitions`` (by full name) gives the definition of each type the schema may
    refer to without defining it. Raises ``DefinitionProblem`` for a name with no definition, or a type
    defined twice differently."""
    return _Definer(definitions).copy(schema, "", None)


class _Definer:
    def __init__(self, definitions: Mapping[str, Any]) -> None:
        self.definitions = definitions
        self.defined: dict[str, Any] = {}  # full name -> the definition written (as found)

    def copy(self, schema: Any, path: str, namespace: str | None) -> Any:
        if isinstance(schema, str):
            return schema if schema in PRIMITIVES else self.reference(schema, path, namespace)
        if isinstance(schema, list):
            return [self.copy(branch, path, namespace) for branch in schema]
        if not isinstance(schema, dict):
            return schema
        kind = schema.get("type")
        if kind in _NAMED:
            return self.definition(schema, path, namespace)
        if kind == "array":
            return {**schema, "items": self.copy(schema.get("items"), f"{path}[]", namespace)}
        if kind == "map":
            return {**schema, "values": self.copy(schema.get("values"), f"{path}{{}}", namespace)}
        if isinstance(kind, dict | list) or (isinstance(kind, str) and kind not in PRIMITIVES):
            return {**schema, "type": self.copy(kind, path, namespace)}  # {"type": ...} wrapping a type
        return schema

    def reference(self, name: str, path: str, namespace: str | None) -> Any:
        full = lookup_name(name, namespace, self.defined)
        if full is not None:
            return name
        full = lookup_name(name, namespace, self.definitions)
        if full is None:
            raise DefinitionProblem(path, f"unknown type {name}")
        # The first use that remains: the definition goes here.
        return self.copy(_placed(self.definitions[full], full, namespace), path, namespace)

    def definition(self, schema: dict[str, Any], path: str, namespace: str | None) -> Any:
        full = fullname(str(schema.get("name", "")), schema.get("namespace", namespace))
        earlier = self.defined.get(full)
        if earlier is not None:
            # Defined again (a moved definition held it): the same definition becomes a name.
            if _body(earlier) != _body(schema):
                raise DefinitionProblem(
                    path, f"named type {full} would have two different definitions: give one its own name"
                )
            return _reference_to(full, namespace, path)
        self.defined[full] = schema  # before its fields: a recursive type refers to itself inside
        if schema.get("type") not in ("record", "error"):
            return dict(schema)
        inner = full.rpartition(".")[0] or None
        fields = [
            {**f, "type": self.copy(f.get("type"), join(path, str(f.get("name"))), inner)}
            if isinstance(f, dict)
            else f
            for f in schema.get("fields", []) or []
        ]
        return {**schema, "fields": fields}


def _placed(definition: Any, full: str, namespace: str | None) -> Any:
    """``definition`` written where the enclosing namespace is ``namespace``: its own written out when
    its name would otherwise mean another type there."""
    if not isinstance(definition, dict):
        return definition
    name = str(definition.get("name", ""))
    if "namespace" in definition or fullname(name, namespace) == full:
        return definition
    placed: dict[str, Any] = {}
    for key, value in definition.items():
        placed[key] = value
        if key == "name":
            placed["namespace"] = full.rpartition(".")[0]  # "" is the null namespace
    return placed


def _body(definition: dict[str, Any]) -> dict[str, Any]:
    """A definition without its name, whose full name is known (it may be written in two ways)."""
    return {k: v for k, v in definition.items() if k not in ("name", "namespace")}


def _reference_to(full: str, namespace: str | None, path: str) -> str:
    """How ``full`` is referred to where the enclosing namespace is ``namespace``."""
    if "." in full or not namespace:
        return full
    raise DefinitionProblem(
        path,
        f"named type {full} has no namespace and cannot be referred to inside namespace {namespace}: "
        "give it a namespace",
    )
