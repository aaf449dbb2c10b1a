"""tokenize: reversible deterministic encryption (AES-SIV), ``tk1.<key>.<version>.<base64url>``;
``stream-anon detokenize`` (``crypto.detokenize``) reverses it."""

from __future__ import annotations

from typing import ClassVar

from stream_anon.crypto import token_function
from stream_anon.ops.base import Apply, AvroType, Operation, register


@register
class Tokenize(Operation):
    name = "tokenize"
    accepts = frozenset({"string"})
    params: ClassVar[dict[str, type | tuple[type, ...]]] = {"key": str}

    def check(self) -> None:
        self.key_name, self.version = self._key()

    def output_type(self) -> AvroType:
        return "string"

    def build(self) -> Apply:
        token = token_function(self.keys, self.key_name, self.version)
        return lambda value, ctx: token(value)
