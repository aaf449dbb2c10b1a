"""mask: characters replaced by a mask character, keeping the first/last few (or an email's domain)."""

from __future__ import annotations

from typing import Any, ClassVar

from stream_anon.ops.base import Apply, Operation, RuleError, register


@register
class Mask(Operation):
    name = "mask"
    accepts = frozenset({"string"})
    params: ClassVar[dict[str, type | tuple[type, ...]]] = {
        "keep_first": int,
        "keep_last": int,
        "char": str,
        "mode": str,
    }

    def check(self) -> None:
        self.first = self._int("keep_first", 0, 0, 64)
        self.last = self._int("keep_last", 0 if self.spec.get("mode") == "email" else 4, 0, 64)
        self.char = self.spec.get("char", "*")
        if len(self.char) != 1:
            raise RuleError("mask: char must be one character")
        if self.spec.get("mode", "chars") not in ("chars", "email"):
            raise RuleError("mask: mode must be chars or email")

    def build(self) -> Apply:
        first, last, char = self.first, self.last, str(self.char)

        def chars(value: str) -> str:
            n = len(value)
            if first + last >= n:
                return char * n  # too short to keep anything without revealing it all
            return value[:first] + char * (n - first - last) + (value[n - last :] if last else "")

        if self.spec.get("mode") == "email":

            def email(value: str, ctx: Any) -> str:
                local, at, domain = value.rpartition("@")
                if not at:
                    return chars(value)
                keep = max(first, 1) if len(local) > 1 else 0
                return local[:keep] + char * max(len(local) - keep, 1) + "@" + domain

            return email
        return lambda value, ctx: chars(value)
