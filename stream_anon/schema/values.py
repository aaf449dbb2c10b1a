"""The raw values at a field's path in a decoded record: how ``Plan.pii_values`` reads ``"pii"`` fields.

``values_at(path)`` walks the values along a path (through nested records, arrays and maps), whatever
their shape; it is the specification. ``read_lines`` writes the same reads out for all of a schema's
``"pii"`` fields as the body of one generated function: a path through plain records becomes a chain of
lookups, and a path through arrays or maps, or a value that is not a string, falls back to ``values_at``.
``pii_values_function`` is that function listing the values; the verifier's screen writes another one
from the same lines that lists what it searches for (``stream_anon.verify``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from stream_anon.schema.codegen import generate, literal

ValuesAt = Callable[[dict[str, Any]], Sequence[Any]]
# A pii field's reader: (entity, path, the function that collects its raw values from a record).
Getter = tuple[str, str, ValuesAt]
PiiValues = Callable[[dict[str, Any]], list[tuple[str, str, str]]]


def through_containers(path: str) -> bool:
    return "[]" in path or "{}" in path


def values_at(path: str) -> ValuesAt:
    """Collect the raw values at a path (through nested records, arrays and maps)."""
    parts = path.replace("[]", "").replace("{}", "").split(".")

    def get(record: dict[str, Any]) -> Sequence[Any]:
        values: list[Any] = [record]
        for part in parts:
            nxt: list[Any] = []
            for v in values:
                if isinstance(v, dict):
                    child = v.get(part)
                    if isinstance(child, list):
                        nxt.extend(child)
                    elif isinstance(child, dict) and part != parts[-1]:
                        nxt.append(child)
                    elif isinstance(child, dict):
                        nxt.extend(child.values())
                    elif child is not None:
                        nxt.append(child)
            values = nxt
        return values

    if through_containers(path):
        return get

    def get_plain(record: dict[str, Any]) -> Sequence[Any]:
        # A path through plain records, the common case: a chain of lookups, one value or none.
        value: Any = record
        for part in parts:
            value = value.get(part) if value.__class__ is dict else None
        if value is None:
            return ()
        if value.__class__ is dict or value.__class__ is list:
            return get(record)  # a map or array field itself
        return (value,)

    return get_plain


def collect_values(getter: Getter, record: dict[str, Any], out: list[tuple[str, str, str]]) -> None:
    """Append the text of each value ``getter`` reads (strings, integers as digits, and bytes or fixed
    values that are UTF-8 text)."""
    entity, path, get = getter
    for value in get(record):
        if value.__class__ is str:
            out.append((entity, path, value))
        elif isinstance(value, (str, int)) and not isinstance(value, bool):
            out.append((entity, path, str(value)))
        elif isinstance(value, bytes):
            try:
                out.append((entity, path, value.decode("utf-8")))
            except UnicodeDecodeError:
                continue  # binary: no text to look for


def interpreted_pii_values(getters: Sequence[Getter]) -> PiiValues:
    """``pii_values_function``'s specification: each getter's values, in order."""

    def pii_values(record: dict[str, Any]) -> list[tuple[str, str, str]]:
        out: list[tuple[str, str, str]] = []
        for getter in getters:
            collect_values(getter, record, out)
        return out

    return pii_values


def read_lines(
    getters: Sequence[Getter],
    on_string: Callable[[int, str, str], list[str]],
    otherwise: Callable[[int], list[str]],
) -> list[str]:
    """The body of a generated function of ``record`` that reads each getter's path in turn.

    A path through plain records becomes a chain of lookups into ``v``; ``on_string(i, entity, path)``
    gives the lines run when ``v`` is a string there. ``otherwise(i)`` gives the lines run for a path
    through arrays or maps, or for a value there that is not a string: they read it with ``getters[i]``.
    The lines come back indented for the function's body.
    """
    lines: list[str] = []
    for i, (entity, path, _) in enumerate(getters):
        if through_containers(path):
            lines += [f"    {line}" for line in otherwise(i)]
            continue
        lines.append("    v = record")
        for part in path.split("."):
            lines.append(f"    v = v.get({literal(part)}) if v.__class__ is dict else None")
        lines.append("    if v.__class__ is str:")
        lines += [f"        {line}" for line in on_string(i, entity, path)]
        lines.append("    elif v is not None:")
        lines += [f"        {line}" for line in otherwise(i)]
    return lines


def pii_values_function(getters: Sequence[Getter]) -> PiiValues:
    """``Plan.pii_values``, generated: a found string is added as it is, anything else is collected."""
    lines = ["def pii_values(record):", "    out = []", "    add = out.append"]
    lines += read_lines(
        getters,
        lambda i, entity, path: [f"add(({literal(entity)}, {literal(path)}, v))"],
        lambda i: [f"collect(getters[{i}], record, out)"],
    )
    lines.append("    return out")
    function: PiiValues = generate(
        "pii_values", lines, {"collect": collect_values, "getters": tuple(getters)}, "pii_values"
    )
    return function
