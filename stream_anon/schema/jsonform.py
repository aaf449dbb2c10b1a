"""A record as a JSON object, for file mode (``stream-anon anonymize``): bytes as Avro's JSON encoding.

JSON has no bytes. As the Avro specification's JSON encoding does, a ``bytes`` or ``fixed`` value
(``decimal`` and ``duration`` included: their bytes as written) is a string whose characters
U+0000-U+00FF are its bytes, one each: ``"\\u00ff\\u0000"`` is the two bytes ff 00, ``"abc"`` the
three bytes of "abc". Logical types are their base values (a ``date`` is its day number, a timestamp
its count), as the worker reads them; a union value is the bare value or null.
"""

from __future__ import annotations

from typing import Any

from stream_anon.schema.model import Array, Map, Node, Record, Union

_BYTES = ("bytes", "fixed")


def from_json(node: Node, value: Any) -> Any:
    """``value`` (parsed JSON) with its bytes and fixed values as bytes. A string that is not a byte
    string (a character above U+00FF) stays a string, so the writer schema's validation refuses it."""
    if node.kind in _BYTES:
        return _as_bytes(value)
    if isinstance(node, Record) and isinstance(value, dict):
        out = dict(value)
        for field in node.fields:
            if field.name in out:
                out[field.name] = from_json(field.node, out[field.name])
        return out
    if isinstance(node, Array) and isinstance(value, list):
        return [from_json(node.items, item) for item in value]
    if isinstance(node, Map) and isinstance(value, dict):
        return {key: from_json(node.values, item) for key, item in value.items()}
    if isinstance(node, Union):
        branch = _branch(node, value)
        return value if branch is None else from_json(branch, value)
    return value


def to_json(value: Any) -> str:
    """``json.dumps``'s ``default``: bytes as the string of their byte values."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("latin-1")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _as_bytes(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value


def _branch(node: Union, value: Any) -> Node | None:
    """The one branch a JSON value can be (a string is text when the union takes text), or None."""
    if isinstance(value, str):
        if any(b.kind in ("string", "enum") for b in node.branches):
            return None
        candidates = [b for b in node.branches if b.kind in _BYTES]
    elif isinstance(value, dict):
        candidates = [b for b in node.branches if isinstance(b, Record | Map)]
    elif isinstance(value, list):
        candidates = [b for b in node.branches if isinstance(b, Array)]
    else:
        return None
    return candidates[0] if len(candidates) == 1 or (candidates and isinstance(value, str)) else None
