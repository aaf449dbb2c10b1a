"""Functions generated as Python source, for the per-record paths that a schema fixes in advance.

The record function of a plan, ``Plan.pii_values`` and the verifier's screen are each written out as one
straight-line function per schema (as ``dataclasses`` writes ``__init__``): no loop over fields, no call per
field, no schema lookup per record. ``generate`` is the one way to make such a function:

* it checks the source's names: the namespace and the function name must be identifiers, and schema
  names (field names, paths) may only enter the source as ``repr`` literals, which it cannot check, so
  callers write them with ``literal``;
* it registers the source with ``linecache`` under a unique file name, so a traceback through generated
  code shows its lines, and ``source_of(function)`` gives it back;
* with ``STREAM_ANON_DUMP_GENERATED=<directory>`` it also writes each source to a file there, for reading
  or stepping through with a debugger.

The interpreted versions of these functions (``rules.plan.interpreted_record_function``,
``schema.values.values_at``, ``walk.compile_walker``) are their specification: property tests compare
them.
"""

from __future__ import annotations

import itertools
import keyword
import linecache
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

DUMP_ENV = "STREAM_ANON_DUMP_GENERATED"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_counter = itertools.count(1)


class GeneratedCodeError(Exception):
    """A generated function's name or namespace is not a valid identifier."""


def literal(value: str) -> str:
    """A schema-given string (field name, path, entity) as it may enter generated source."""
    if not isinstance(value, str):
        raise GeneratedCodeError(
            f"only strings enter generated source as literals, not {type(value).__name__}"
        )
    return repr(value)


def generate(name: str, lines: list[str], namespace: Mapping[str, Any], purpose: str) -> Callable[..., Any]:
    """Compile ``lines`` (a ``def name(...)`` and its body) with ``namespace`` as its globals.

    ``purpose`` names what the code is for in its file name (``<generated record function #12>``).
    """
    for identifier in (name, *namespace):
        if not _IDENTIFIER.fullmatch(identifier) or keyword.iskeyword(identifier):
            raise GeneratedCodeError(f"{identifier!r} is not an identifier")
    source = "\n".join(lines) + "\n"
    filename = f"<generated {purpose} #{next(_counter)}>"
    # mtime None: linecache.checkcache keeps entries that have no file behind them
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    dump = os.environ.get(DUMP_ENV)
    if dump:
        directory = Path(dump)
        directory.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9]+", "-", filename).strip("-")
        (directory / f"{safe}.py").write_text(source, encoding="utf-8")
    scope = dict(namespace)
    exec(compile(source, filename, "exec"), scope)
    function: Callable[..., Any] = scope[name]
    return function


def source_of(function: Callable[..., Any]) -> str:
    """The source ``generate`` compiled ``function`` from (empty if it was not generated)."""
    filename = getattr(getattr(function, "__code__", None), "co_filename", "")
    lines = linecache.getlines(filename) if filename.startswith("<generated ") else []
    return "".join(lines)
