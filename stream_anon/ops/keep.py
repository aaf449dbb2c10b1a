"""keep: the value as it is. Any type, records and unions of several types included."""

from __future__ import annotations

from stream_anon.ops.base import Operation, register


@register
class Keep(Operation):
    name = "keep"
    named_kinds = frozenset({"enum", "fixed"})
    whole_values = True
    passes_through = True
    generated = False
