"""The interface every operation implements, and what it declares so the compiler never asks its name.

An operation is built once per field at compile time (``Operation(spec, avro, keys)``): it validates its
parameters and the Avro type of the values it is given (raising ``RuleError``), says its output type, and
returns a plain per-value function ``apply(value, ctx)`` (``build``), or for a batched operation a function
over all of a batch's values at once (``build_batch``). Values are the non-null leaves: unions with null,
arrays and maps are unwrapped by the compiler before an operation sees them.

The class attributes are the capabilities the compiler reads:

``accepts``          the primitive types of the values it takes (``None``: any primitive)
``named_kinds``      the named leaf types it takes besides (``enum``: its symbol, a string; ``fixed``: bytes)
``whole_values``     it also takes a value of several types at once (a union of several non-null types)
``passes_through``   the value is kept as it is: no per-value function, records and unions kept whole
``removes_field``    the field leaves the derived schema (nothing is built)
``batched``          values are collected during the record pass and transformed once per batch
``generated``        its output is made by the rule on purpose (the verifier does not screen it)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from stream_anon.detection import TextScanner
from stream_anon.keys import Keys

Apply = Callable[[Any, Any], Any]
"""A per-value function: ``apply(value, ctx)``; ``ctx.record`` is the whole record being transformed."""
AvroType = Any

NUMERIC = frozenset({"int", "long", "float", "double"})
INTEGRAL = frozenset({"int", "long"})
UNION = "union"
"""``base_type`` of a union of several non-null types (given only to ``whole_values`` operations)."""


class RuleError(Exception):
    """An annotation that cannot be compiled; the compiler adds the field path."""


class ValueRuleError(Exception):
    """A rule that cannot handle one record's value; the message never contains the value."""


@dataclass(frozen=True, slots=True)
class ItemFailure:
    """A batched operation that failed on one value: the record fails, the rest of the batch does not."""

    error_class: str
    message: str


BatchApply = Callable[[Sequence[str], Sequence[Sequence[tuple[str, str]]]], list["str | ItemFailure"]]
"""A batched operation's function: the batch's texts and, for each, the (entity, value) pairs of its
record's ``pii`` fields; one result per text, in order."""


def base_type(avro: AvroType) -> str:
    """The underlying primitive name of a leaf type (``{"type": "long", "logicalType": ...}`` -> long)."""
    if isinstance(avro, list):
        return UNION
    if isinstance(avro, dict):
        return str(avro.get("type"))
    return str(avro)


def logical_type(avro: AvroType) -> str | None:
    return avro.get("logicalType") if isinstance(avro, dict) else None


class Operation:
    """One anonymization technique. Subclasses set ``name`` and their capabilities, and implement
    ``check`` (parameters), ``output_type`` and ``build`` (or ``build_batch``)."""

    name: ClassVar[str]
    accepts: ClassVar[frozenset[str] | None] = None
    named_kinds: ClassVar[frozenset[str]] = frozenset()
    whole_values: ClassVar[bool] = False
    passes_through: ClassVar[bool] = False
    removes_field: ClassVar[bool] = False
    batched: ClassVar[bool] = False
    generated: ClassVar[bool] = True
    params: ClassVar[dict[str, type | tuple[type, ...]]] = {}
    required: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, spec: dict[str, Any], avro: AvroType, keys: Keys) -> None:
        unknown = set(spec) - set(self.params) - {"op"}
        if unknown:
            raise RuleError(f"{self.name}: unknown parameter(s) {', '.join(sorted(unknown))}")
        missing = self.required - set(spec)
        if missing:
            raise RuleError(f"{self.name}: missing parameter(s) {', '.join(sorted(missing))}")
        for key, kind in self.params.items():
            if key in spec and (
                not isinstance(spec[key], kind) or (isinstance(spec[key], bool) and kind is not bool)
            ):
                raise RuleError(f"{self.name}: parameter {key!r} has the wrong type")
        self.spec = spec
        self.avro = avro
        self.base = base_type(avro)
        self.keys = keys
        if self.base == UNION:
            if not self.whole_values:
                raise RuleError(f"{self.name} cannot apply to a union of several types")
        elif self.accepts is not None and self.base not in self.accepts:
            raise RuleError(
                f"{self.name} cannot apply to type {self.base} (accepts {', '.join(sorted(self.accepts))})"
            )
        self.check()

    def check(self) -> None:
        """Validate parameters beyond their types."""

    def output_type(self) -> AvroType:
        """The Avro type of the values ``build``'s function returns."""
        return self.avro

    def build(self) -> Apply:
        """The per-value function (operations that are neither pass-through nor batched)."""
        raise NotImplementedError(f"{self.name} has no per-value function")

    def build_batch(self, scanner: TextScanner | None) -> BatchApply:
        """The per-batch function of a ``batched`` operation; ``scanner`` detects entities in text."""
        raise NotImplementedError(f"{self.name} is not batched")

    def _int(self, key: str, default: int, lo: int, hi: int) -> int:
        value = self.spec.get(key, default)
        if not lo <= value <= hi:
            raise RuleError(f"{self.name}: {key} must be between {lo} and {hi}")
        return int(value)

    def _key(self) -> tuple[str, int]:
        name = self.spec.get("key", "default")
        try:
            version, _ = self.keys.active(name)
        except KeyError:
            raise RuleError(f"{self.name}: key {name!r} is not in the keys file") from None
        return name, version


REGISTRY: dict[str, type[Operation]] = {}
"""Every operation by name; ``stream_anon.ops`` imports each module, which registers its class."""


def register(cls: type[Operation]) -> type[Operation]:
    REGISTRY[cls.name] = cls
    return cls


def operation_named(name: str) -> type[Operation]:
    found = REGISTRY.get(name)
    if found is None:
        raise RuleError(f"unknown operation {name!r} (known: {', '.join(sorted(REGISTRY))})")
    return found
