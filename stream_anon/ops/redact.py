"""redact: a constant in place of a string, null in place of anything else."""

from __future__ import annotations

from typing import ClassVar

from stream_anon.ops.base import UNION, Apply, AvroType, Operation, register


@register
class Redact(Operation):
    name = "redact"
    named_kinds = frozenset({"enum", "fixed"})
    whole_values = True
    params: ClassVar[dict[str, type | tuple[type, ...]]] = {"replacement": str}

    def output_type(self) -> AvroType:
        if self.base == "string":
            return "string"
        if self.base == UNION:
            return "null"
        return ["null", self.avro]

    def build(self) -> Apply:
        if self.base == "string":
            constant = self.spec.get("replacement", "[REDACTED]")
            return lambda value, ctx: constant
        return lambda value, ctx: None
