"""hmac: a keyed pseudonym ``hm1.<key>.<version>.<base64url>``, deterministic per key version, not
reversible (``crypto.pseudonym_function``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, ClassVar

from stream_anon.crypto import HMAC_PURPOSE, pseudonym_function, pseudonym_prefix
from stream_anon.ops.base import Apply, AvroType, Operation, RuleError, register

NORMALIZERS: dict[str, Callable[[str], str]] = {
    "none": lambda s: s,
    "lower": lambda s: s.strip().lower(),
    "digits": lambda s: re.sub(r"\D", "", s),
    "trim": str.strip,
}


@register
class Hmac(Operation):
    name = "hmac"
    accepts = frozenset({"string", "bytes", "int", "long"})
    named_kinds = frozenset({"enum", "fixed"})
    params: ClassVar[dict[str, type | tuple[type, ...]]] = {"key": str, "normalize": str, "length": int}

    def check(self) -> None:
        self.key_name, self.version = self._key()
        if self.spec.get("normalize", "none") not in NORMALIZERS:
            raise RuleError(f"hmac: normalize must be one of {', '.join(NORMALIZERS)}")
        self.length = self._int("length", 16, 8, 32)

    def output_type(self) -> AvroType:
        return "string"

    def build(self) -> Apply:
        pseudonym = pseudonym_function(
            self.keys.derive(self.key_name, self.version, HMAC_PURPOSE),
            pseudonym_prefix(self.key_name, self.version),
            self.length,
        )
        if self.base == "bytes":
            return lambda value, ctx: pseudonym(value)
        normalize = NORMALIZERS[self.spec.get("normalize", "none")]

        def text(value: Any, ctx: Any) -> str:
            return pseudonym(normalize(str(value)).encode())

        return text
