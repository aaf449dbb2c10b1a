"""The string leaves of a decoded Avro record, each with its field path and the slot that holds it.

Paths use the rule engine's notation: dotted field names, ``[]`` for array items, ``{}`` for map values
(``user.email``, ``tags[]``, ``attrs{}``). A map's keys are data, never part of a path, so paths stay a
bounded set fixed by the schema; the keys themselves are strings and are returned as leaves at
``attrs{key}`` with ``key_of_map`` set, because a map key can hold PII as well as a value can.

``compile_walker(schema)`` turns a schema (as written, or fastavro's parsed form) into a function that
lists the leaves of a record without looking at the schema again; ``walk_untyped`` does the same from
the values alone, for records whose schema is unknown.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping, MutableSequence, Set
from typing import Any

Slot = MutableMapping[str, Any] | MutableSequence[Any]


# One string in a record: (path, text, parent, key, key_of_map). The text sits at ``parent[key]``, or is
# the key itself of the map ``parent`` when ``key_of_map``. A plain tuple: the verifier builds one per
# string of every record.
Leaf = tuple[str, str, Slot, Any, bool]


def replace_leaf(leaf: Leaf, text: str) -> None:
    """Write ``text`` in place of ``leaf`` (a map key is renamed, keeping its value).

    Replace a map's values before its keys (go through the leaves in reverse): a value's slot names the key.
    """
    _, _, parent, key, key_of_map = leaf
    if key_of_map and isinstance(parent, MutableMapping):
        parent[text] = parent.pop(key)
    else:
        parent[key] = text


Visit = Callable[[Any, Slot, Any, list[Leaf]], None]
Walker = Callable[[dict[str, Any]], list[Leaf]]

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
# Enum symbols and fixed bytes come from the schema or are binary: neither is free text.
_NO_TEXT = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "enum", "fixed"})


def compile_walker(schema: Any) -> Walker:
    """A function listing the string leaves of records written with ``schema``."""
    names: dict[str, Any] = {}
    if isinstance(schema, dict):
        names.update(schema.get("__named_schemas", {}))
    _collect_names(schema, None, names)
    top = _compile(schema, "", names, frozenset(), None)

    def walk(record: dict[str, Any]) -> list[Leaf]:
        out: list[Leaf] = []
        top(record, {"": record}, "", out)
        return out

    return walk


# The strings of a record split in two lists: those the verifier's detectors read, and those at
# ``generated`` paths (rule output), in the walker's order.
Screen = Callable[[dict[str, Any]], tuple[list[str], list[str]]]


class _Unscreenable(Exception):
    """A schema part whose leaves only the full walker lists faithfully (recursive or ambiguous types)."""


def compile_screen(schema: Any, generated: Set[str]) -> Screen | None:
    """The strings ``compile_walker(schema)`` would list, without their slots: the verifier's fast path.

    Map keys always go to the first list (a key is data, whatever rule made its value). ``None`` for
    schemas the walker reads by their values (recursive types, unions of several records or arrays).

    The screen runs on every record, so it is generated as one straight-line function for the schema
    (nested ``if``/``for`` blocks, no call per field). Only field names, through ``repr``, and names of
    its own go into the source.
    """
    names: dict[str, Any] = {}
    if isinstance(schema, dict):
        names.update(schema.get("__named_schemas", {}))
    _collect_names(schema, None, names)
    variables = iter(range(1, 1 << 30))
    try:
        body = _screen(
            schema, "", names, frozenset(), None, generated, "record", lambda: f"v{next(variables)}"
        )
    except _Unscreenable:
        return None
    source = "\n".join(
        [
            "def screen(record):",
            "    checked = []",
            "    produced = []",
            "    c = checked.append",
            "    p = produced.append",
            *(f"    {line}" for line in body or []),
            "    return checked, produced",
            "",
        ]
    )
    namespace: dict[str, Any] = {}
    exec(compile(source, "<stream_anon.walk: screen>", "exec"), namespace)
    screen: Screen = namespace["screen"]
    return screen


def _screen(
    schema: Any,
    path: str,
    names: dict[str, Any],
    active: frozenset[str],
    namespace: str | None,
    generated: Set[str],
    var: str,
    fresh: Callable[[], str],
) -> list[str] | None:
    """Source lines appending the strings of ``var`` (a value of ``schema``); None when it holds no text."""
    schema = _resolve(schema, names, namespace)
    kind = _kind(schema)
    if kind == "string":
        return [f"if isinstance({var}, str):", f"    {'p' if path in generated else 'c'}({var})"]
    if kind in _NO_TEXT:
        return None
    if kind == "wrapped":
        return _screen(schema["type"], path, names, active, namespace, generated, var, fresh)
    if kind == "union":
        branches = [_kind(_resolve(b, names, namespace)) for b in schema]
        if any(k not in _NO_TEXT and k != "string" for k in branches):
            nested = [b for b, k in zip(schema, branches, strict=True) if k not in _NO_TEXT and k != "string"]
            if len(nested) > 1 or "string" in branches:
                raise _Unscreenable(path)
            return _screen(nested[0], path, names, active, namespace, generated, var, fresh)
        if "string" in branches:
            return _screen("string", path, names, active, namespace, generated, var, fresh)
        return None
    if kind == "record":
        full = _fullname(str(schema.get("name", "")), schema.get("namespace", namespace))
        if full in active:
            raise _Unscreenable(path)
        inner_ns = full.rpartition(".")[0] or None
        body: list[str] = []
        for field in schema.get("fields", []):
            name = str(field["name"])
            child = fresh()
            lines = _screen(
                field.get("type"),
                _join(path, name),
                names,
                active | {full},
                inner_ns,
                generated,
                child,
                fresh,
            )
            if lines is not None:
                body += [f"{child} = {var}.get({name!r})", *lines]
        return [f"if isinstance({var}, dict):", *_indent(body)] if body else None
    if kind == "array":
        item = fresh()
        lines = _screen(schema.get("items"), f"{path}[]", names, active, namespace, generated, item, fresh)
        if lines is None:
            return None
        return [f"if isinstance({var}, list):", f"    for {item} in {var}:", *_indent(lines, 2)]
    if kind == "map":
        key, item = fresh(), fresh()
        lines = _screen(schema.get("values"), f"{path}{{}}", names, active, namespace, generated, item, fresh)
        return [
            f"if isinstance({var}, dict):",
            f"    for {key}, {item} in {var}.items():",
            f"        if isinstance({key}, str):",
            f"            c({key})",
            *_indent(lines or [], 2),
        ]
    raise _Unscreenable(path)


def _indent(lines: list[str], levels: int = 1) -> list[str]:
    return [f"{'    ' * levels}{line}" for line in lines]


def walk_untyped(record: dict[str, Any]) -> list[Leaf]:
    """Leaves of a record whose schema is unknown: nested dicts are taken as records."""
    out: list[Leaf] = []
    _walk_any(record, "", out)
    return out


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _fullname(name: str, namespace: str | None) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _collect_names(schema: Any, namespace: str | None, names: dict[str, Any]) -> None:
    if isinstance(schema, list):
        for branch in schema:
            _collect_names(branch, namespace, names)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "error", "enum", "fixed") and isinstance(schema.get("name"), str):
            namespace = schema.get("namespace", namespace)
            full = _fullname(schema["name"], namespace)
            names.setdefault(full, schema)
            namespace = full.rpartition(".")[0] or None
        if kind in ("record", "error"):
            for field in schema.get("fields", []):
                _collect_names(field.get("type"), namespace, names)
        elif kind == "array":
            _collect_names(schema.get("items"), namespace, names)
        elif kind == "map":
            _collect_names(schema.get("values"), namespace, names)
        elif isinstance(kind, dict | list):
            _collect_names(kind, namespace, names)


def _resolve(schema: Any, names: dict[str, Any], namespace: str | None) -> Any:
    if isinstance(schema, str) and schema not in _PRIMITIVES:
        return names.get(schema) or names.get(_fullname(schema, namespace)) or schema
    return schema


def _kind(schema: Any) -> str:
    if isinstance(schema, str):
        return schema if schema in _PRIMITIVES else "unknown"
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        kind = schema.get("type")
        if isinstance(kind, str):
            return "record" if kind == "error" else kind
        return "wrapped"
    return "unknown"


def _compile(
    schema: Any, path: str, names: dict[str, Any], active: frozenset[str], namespace: str | None
) -> Visit:
    schema = _resolve(schema, names, namespace)
    kind = _kind(schema)
    if kind == "string":
        return _visit_string(path)
    if kind in _NO_TEXT:
        return _visit_nothing
    if kind == "wrapped":  # {"type": {"type": "array", ...}}
        return _compile(schema["type"], path, names, active, namespace)
    if kind == "record":
        return _compile_record(schema, path, names, active, namespace)
    if kind == "array":
        items = _compile(schema.get("items"), f"{path}[]", names, active, namespace)
        return _visit_array(items)
    if kind == "map":
        values = _compile(schema.get("values"), f"{path}{{}}", names, active, namespace)
        return _visit_map(f"{path}{{key}}", values)
    if kind == "union":
        return _compile_union(schema, path, names, active, namespace)
    return _visit_any(path)


def _compile_record(
    schema: dict[str, Any],
    path: str,
    names: dict[str, Any],
    active: frozenset[str],
    namespace: str | None,
) -> Visit:
    full = _fullname(str(schema.get("name", "")), schema.get("namespace", namespace))
    if full in active:
        # A recursive type: below this point paths are not bounded by the schema, walk the values as they are.
        return _visit_any(path)
    active = active | {full}
    inner_ns = full.rpartition(".")[0] or None
    fields: list[tuple[str, Visit]] = []

    def visit(value: Any, parent: Slot, key: Any, out: list[Leaf]) -> None:
        if not isinstance(value, dict):
            return
        for name, child in fields:
            if name in value:
                child(value[name], value, name, out)

    for field in schema.get("fields", []):
        name = str(field["name"])
        child = _compile(field.get("type"), _join(path, name), names, active, inner_ns)
        if child is not _visit_nothing:
            fields.append((name, child))
    return visit


def _compile_union(
    schema: list[Any], path: str, names: dict[str, Any], active: frozenset[str], namespace: str | None
) -> Visit:
    branches = [_resolve(b, names, namespace) for b in schema]
    kinds = [_kind(b) for b in branches]
    has_string = "string" in kinds
    dict_branches = [
        (b, _compile(b, path, names, active, namespace))
        for b, k in zip(branches, kinds, strict=True)
        if k in ("record", "map")
    ]
    list_branches = [
        _compile(b, path, names, active, namespace)
        for b, k in zip(branches, kinds, strict=True)
        if k == "array"
    ]
    as_string = _visit_string(path)
    fallback = _visit_any(path)

    def visit(value: Any, parent: Slot, key: Any, out: list[Leaf]) -> None:
        if isinstance(value, str):
            if has_string:
                as_string(value, parent, key, out)
        elif isinstance(value, dict):
            if len(dict_branches) == 1:
                dict_branches[0][1](value, parent, key, out)
            else:
                _pick_dict_branch(dict_branches, value, fallback)(value, parent, key, out)
        elif isinstance(value, list) and list_branches:
            list_branches[0](value, parent, key, out)

    return visit


def _pick_dict_branch(branches: list[tuple[Any, Visit]], value: dict[str, Any], fallback: Visit) -> Visit:
    # Decoded unions of several records carry no branch name: the record whose field names match wins.
    for schema, visit in branches:
        if schema.get("type") in ("record", "error") and {f["name"] for f in schema.get("fields", [])} == set(
            value
        ):
            return visit
    return fallback


def _visit_nothing(value: Any, parent: Slot, key: Any, out: list[Leaf]) -> None:
    return None


def _visit_string(path: str) -> Visit:
    def visit(value: Any, parent: Slot, key: Any, out: list[Leaf]) -> None:
        if isinstance(value, str):
            out.append((path, value, parent, key, False))

    return visit


def _visit_array(items: Visit) -> Visit:
    def visit(value: Any, parent: Slot, key: Any, out: list[Leaf]) -> None:
        if isinstance(value, list):
            for index, item in enumerate(value):
                items(item, value, index, out)

    return visit


def _visit_map(path: str, values: Visit) -> Visit:
    def visit(value: Any, parent: Slot, key: Any, out: list[Leaf]) -> None:
        if isinstance(value, dict):
            for map_key in list(value):
                if isinstance(map_key, str):
                    out.append((path, map_key, value, map_key, True))
                values(value[map_key], value, map_key, out)

    return visit


def _visit_any(path: str) -> Visit:
    def visit(value: Any, parent: Slot, key: Any, out: list[Leaf]) -> None:
        if isinstance(value, str):
            out.append((path, value, parent, key, False))
        else:
            _walk_any(value, path, out)

    return visit


def _walk_any(value: Any, path: str, out: list[Leaf], depth: int = 0) -> None:
    if depth > 64:
        return
    if isinstance(value, dict):
        for key in list(value):
            child = value[key]
            child_path = _join(path, str(key))
            if isinstance(child, str):
                out.append((child_path, child, value, key, False))
            else:
                _walk_any(child, child_path, out, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, str):
                out.append((f"{path}[]", item, value, index, False))
            else:
                _walk_any(item, f"{path}[]", out, depth + 1)
