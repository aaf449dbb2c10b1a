"""drop: the field leaves the derived schema. Any type."""

from __future__ import annotations

from stream_anon.ops.base import Operation, register


@register
class Drop(Operation):
    name = "drop"
    removes_field = True
