"""Operations: one class per file, registered by name; ``base`` has the interface and the capabilities
the compiler reads. Adding an operation: a module here with a registered ``Operation`` subclass, its
import below, and a section in docs/annotations.md."""

from stream_anon.ops import drop, generalize, hmac, keep, mask, noise, redact, scan, tokenize
from stream_anon.ops.base import (
    REGISTRY,
    Apply,
    AvroType,
    BatchApply,
    ItemFailure,
    Operation,
    RuleError,
    ValueRuleError,
    operation_named,
)

__all__ = [
    "REGISTRY",
    "Apply",
    "AvroType",
    "BatchApply",
    "ItemFailure",
    "Operation",
    "RuleError",
    "ValueRuleError",
    "drop",
    "generalize",
    "hmac",
    "keep",
    "mask",
    "noise",
    "operation_named",
    "redact",
    "scan",
    "tokenize",
]
