"""The rule engine: annotations on Avro fields compiled once per writer schema into a ``Plan``."""

from stream_anon.crypto import TokenError, detokenize
from stream_anon.ops import REGISTRY, Operation, RuleError
from stream_anon.rules.plan import (
    FieldRule,
    PiiField,
    Plan,
    Problem,
    RuleFailure,
    SchemaRulesError,
    compile_plan,
)

__all__ = [
    "REGISTRY",
    "FieldRule",
    "Operation",
    "PiiField",
    "Plan",
    "Problem",
    "RuleError",
    "RuleFailure",
    "SchemaRulesError",
    "TokenError",
    "compile_plan",
    "detokenize",
]
