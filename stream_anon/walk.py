"""The string leaves of a decoded Avro record (``bytes`` and ``fixed`` values read as UTF-8 text too), each
with its field path and the slot that holds it.

Paths use the rule engine's notation: dotted field names, ``[]`` for array items, ``{}`` for map values
(``user.email``, ``tags[]``, ``attrs{}``). A map's keys are data, never part of a path, so paths stay a
bounded set fixed by the schema; the keys themselves are strings and are returned as leaves at
``attrs{key}`` with ``key_of_map`` set, because a map key can hold PII as well as a value can.

``compile_walker(schema)`` turns a schema (as written, or fastavro's parsed form, through the schema
model) into a function that lists the leaves of a record without looking at the schema again;
``walk_untyped`` does the same from the values alone, for records whose schema is unknown.
``compile_screen`` is the verifier's fast path: the same strings, without their slots, as one generated
function (``schema.codegen``); the walker is its specification.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping, MutableSequence, Set
from typing import Any

from stream_anon.schema import NO_TEXT, Array, Map, Node, Record, Recursive, Union, join, resolve
from stream_anon.schema.codegen import generate, literal

Slot = MutableMapping[str, Any] | MutableSequence[Any]


# How a leaf's text sits in its slot: a value at ``parent[key]`` (a string, or bytes of any length), the
# key itself of the map ``parent``, or bytes whose length is fixed (a ``fixed`` value).
VALUE, MAP_KEY, SIZED = 0, 1, 2

# One string in a record: (path, text, parent, key, how), ``how`` one of the above. A plain tuple: the
# verifier builds one per string of every record.
Leaf = tuple[str, str, Slot, Any, int]


def replace_leaf(leaf: Leaf, text: str) -> None:
    """Write ``text`` in place of ``leaf`` (a map key is renamed, keeping its value; bytes stay bytes, and
    a fixed value keeps its size: cut, or padded with zero bytes).

    Replace a map's values before its keys (go through the leaves in reverse): a value's slot names the key.
    """
    _, _, parent, key, how = leaf
    if how == MAP_KEY and isinstance(parent, MutableMapping):
        parent[text] = parent.pop(key)
    elif isinstance(parent[key], bytes):
        written = text.encode("utf-8", "surrogateescape")
        if how == SIZED:
            size = len(parent[key])
            written = written[:size].ljust(size, b"\0")
        parent[key] = written
    else:
        parent[key] = text


def _text_bytes(node: Node) -> bool:
    """Whether ``node`` is ``bytes`` or ``fixed``, whose values are read as UTF-8 text: a kept bytes or
    fixed field can hold a copy of an address as well as a string can. Whatever its logical type: the
    worker and file mode read a decimal or a duration as its bytes (a reader that makes a decimal a
    ``Decimal`` gives a number, which is not read, as ints are not). Undecodable bytes are kept as
    surrogates, so a redacted value is written back byte for byte around the span."""
    return node.kind in ("bytes", "fixed")


def _as_text(value: bytes) -> str:
    return value.decode("utf-8", "surrogateescape")


Visit = Callable[[Any, Slot, Any, list[Leaf]], None]
Walker = Callable[[dict[str, Any]], list[Leaf]]


def compile_walker(schema: Any) -> Walker:
    """A function listing the string leaves of records written with ``schema``."""
    top = _compile(resolve(schema))

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
    (nested ``if``/``for`` blocks, no call per field). Only field names (``literal``) and names of its
    own go into the source.
    """
    variables = iter(range(1, 1 << 30))
    try:
        body = _screen(resolve(schema), generated, "record", lambda: f"v{next(variables)}")
    except _Unscreenable:
        return None
    lines = [
        "def screen(record):",
        "    checked = []",
        "    produced = []",
        "    c = checked.append",
        "    p = produced.append",
        *(f"    {line}" for line in body or []),
        "    return checked, produced",
    ]
    screen: Screen = generate("screen", lines, {"as_text": _as_text}, "verifier screen")
    return screen


def _screen(node: Node, generated: Set[str], var: str, fresh: Callable[[], str]) -> list[str] | None:
    """Source lines appending the strings of ``var`` (a value of ``node``); None when it holds no text."""
    kind = node.kind
    add = "p" if node.path in generated else "c"
    if kind == "string":
        return [f"if isinstance({var}, str):", f"    {add}({var})"]
    if _text_bytes(node):
        return [f"if isinstance({var}, bytes):", f"    {add}(as_text({var}))"]
    if kind in NO_TEXT:
        return None
    if isinstance(node, Union):
        kinds = [b.kind for b in node.branches]
        has_bytes = any(_text_bytes(b) for b in node.branches)
        nested = [b for b in node.branches if b.kind not in NO_TEXT and b.kind != "string"]
        if nested:
            if len(nested) > 1 or "string" in kinds or has_bytes:
                raise _Unscreenable(node.path)
            return _screen(nested[0], generated, var, fresh)
        either: list[str] = []
        if "string" in kinds:
            either += [f"if isinstance({var}, str):", f"    {add}({var})"]
        if has_bytes:
            either += [f"if isinstance({var}, bytes):", f"    {add}(as_text({var}))"]
        return either or None
    if isinstance(node, Record):
        body: list[str] = []
        for field in node.fields:
            child = fresh()
            lines = _screen(field.node, generated, child, fresh)
            if lines is not None:
                body += [f"{child} = {var}.get({literal(field.name)})", *lines]
        return [f"if isinstance({var}, dict):", *_indent(body)] if body else None
    if isinstance(node, Array):
        item = fresh()
        lines = _screen(node.items, generated, item, fresh)
        if lines is None:
            return None
        return [f"if isinstance({var}, list):", f"    for {item} in {var}:", *_indent(lines, 2)]
    if isinstance(node, Map):
        key, item = fresh(), fresh()
        lines = _screen(node.values, generated, item, fresh)
        return [
            f"if isinstance({var}, dict):",
            f"    for {key}, {item} in {var}.items():",
            f"        if isinstance({key}, str):",
            f"            c({key})",
            *_indent(lines or [], 2),
        ]
    raise _Unscreenable(node.path)  # recursive or unknown types: only the walker reads them


def _indent(lines: list[str], levels: int = 1) -> list[str]:
    return [f"{'    ' * levels}{line}" for line in lines]


def walk_untyped(record: dict[str, Any]) -> list[Leaf]:
    """Leaves of a record whose schema is unknown: nested dicts are taken as records."""
    out: list[Leaf] = []
    _walk_any(record, "", out)
    return out


def _compile(node: Node) -> Visit:
    kind = node.kind
    if kind == "string":
        return _visit_string(node.path)
    if _text_bytes(node):
        return _visit_bytes(node.path, SIZED if kind == "fixed" else VALUE)
    if kind in NO_TEXT:
        return _visit_nothing
    if isinstance(node, Record):
        return _compile_record(node)
    if isinstance(node, Array):
        return _visit_array(_compile(node.items))
    if isinstance(node, Map):
        return _visit_map(f"{node.path}{{key}}", _compile(node.values))
    if isinstance(node, Union):
        return _compile_union(node)
    # A recursive type: below this point paths are not bounded by the schema, walk the values as they are.
    return _visit_any(node.path)


def _compile_record(node: Record) -> Visit:
    fields: list[tuple[str, Visit]] = []

    def visit(value: Any, parent: Slot, key: Any, out: list[Leaf]) -> None:
        if not isinstance(value, dict):
            return
        for name, child in fields:
            if name in value:
                child(value[name], value, name, out)

    for field in node.fields:
        child = _compile(field.node)
        if child is not _visit_nothing:
            fields.append((field.name, child))
    return visit


def _compile_union(node: Union) -> Visit:
    has_string = any(b.kind == "string" for b in node.branches)
    has_bytes = any(_text_bytes(b) for b in node.branches)
    # Bytes of any length fit a union with a bytes branch; else only the size the value has.
    as_bytes = _visit_bytes(node.path, VALUE if any(b.kind == "bytes" for b in node.branches) else SIZED)
    dict_branches = [
        (b.schema, _compile(b)) for b in node.branches if isinstance(b, Record | Recursive | Map)
    ]
    list_branches = [_compile(b) for b in node.branches if isinstance(b, Array)]
    as_string = _visit_string(node.path)
    fallback = _visit_any(node.path)

    def visit(value: Any, parent: Slot, key: Any, out: list[Leaf]) -> None:
        if isinstance(value, str):
            if has_string:
                as_string(value, parent, key, out)
        elif isinstance(value, bytes):
            if has_bytes:
                as_bytes(value, parent, key, out)
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
            out.append((path, value, parent, key, VALUE))

    return visit


def _visit_bytes(path: str, how: int) -> Visit:
    def visit(value: Any, parent: Slot, key: Any, out: list[Leaf]) -> None:
        if isinstance(value, bytes):
            out.append((path, _as_text(value), parent, key, how))

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
                    out.append((path, map_key, value, map_key, MAP_KEY))
                values(value[map_key], value, map_key, out)

    return visit


def _visit_any(path: str) -> Visit:
    def visit(value: Any, parent: Slot, key: Any, out: list[Leaf]) -> None:
        if isinstance(value, str):
            out.append((path, value, parent, key, VALUE))
        elif isinstance(value, bytes):
            out.append((path, _as_text(value), parent, key, SIZED))  # bytes or fixed: keep the size
        else:
            _walk_any(value, path, out)

    return visit


def _walk_any(value: Any, path: str, out: list[Leaf], depth: int = 0) -> None:
    if depth > 64:
        return
    if isinstance(value, dict):
        for key in list(value):
            child = value[key]
            child_path = join(path, str(key))
            if isinstance(child, str):
                out.append((child_path, child, value, key, VALUE))
            elif isinstance(child, bytes):
                out.append((child_path, _as_text(child), value, key, SIZED))
            else:
                _walk_any(child, child_path, out, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, str):
                out.append((f"{path}[]", item, value, index, VALUE))
            elif isinstance(item, bytes):
                out.append((f"{path}[]", _as_text(item), value, index, SIZED))
            else:
                _walk_any(item, f"{path}[]", out, depth + 1)
