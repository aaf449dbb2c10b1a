"""Compile an annotated writer schema once into a ``Plan``; apply it to batches of records.

Compilation walks the schema model (``schema.resolve``), resolves each field's rule (its ``anon``, else
a tag policy, else the record's ``anon.default``), checks it against the field's type, and builds a
plain closure per rule. Each record type becomes one function, generated as straight-line code that
calls those closures (``record_function``, through ``schema.codegen``), and so does
``Plan.pii_values``. The per-record path then runs that code only: no schema walking, no rule lookups,
no loop over the fields.

Operations come from ``stream_anon.ops`` and are asked only for their capabilities (what types they
take, whether they pass the value through, remove the field or run per batch), never by name. A batched
operation's (``scan``) closure leaves a ``Deferred`` placeholder, and once the whole batch has been
transformed the plan runs each batched field's function once over all its values.
"""

from __future__ import annotations

import copy
import re
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastavro.schema import SchemaParseException, UnknownType

from stream_anon.detection import TextScanner
from stream_anon.keys import Keys
from stream_anon.ops import (
    REGISTRY,
    Apply,
    BatchApply,
    ItemFailure,
    Operation,
    RuleError,
    ValueRuleError,
    operation_named,
)
from stream_anon.ops.base import logical_type
from stream_anon.schema import (
    ANNOTATIONS,
    TAGS,
    Array,
    Enum,
    Fixed,
    Map,
    Node,
    Record,
    Recursive,
    Union,
    Unknown,
    resolve,
    strip_annotations,
    strip_logical_types,
)
from stream_anon.schema import Field as SchemaField
from stream_anon.schema.codegen import generate, literal
from stream_anon.schema.definitions import DefinitionProblem, define_at_first_use
from stream_anon.schema.model import named_types
from stream_anon.schema.values import Getter, pii_values_function, values_at

# The form the Avro specification gives a name; every field name must have it.
AVRO_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    code: str  # "unannotated_field" or "invalid_rule"
    message: str


class SchemaRulesError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class RuleFailure:
    path: str
    error_class: str
    message: str


@dataclass(frozen=True, slots=True)
class PiiField:
    path: str
    entity: str


@dataclass(frozen=True, slots=True)
class FieldRule:
    """What the catalog shows for one field: path, types, entity and operation."""

    path: str
    avro_type: str
    entity: str | None
    op: str
    source: str  # "field", "tag", "default"
    derived_type: str | None  # None when dropped


class Deferred:
    """A batched operation's input (a scan field's text), waiting for the batch; knows its result's slot."""

    __slots__ = ("container", "key", "record", "step", "text")

    def __init__(self, text: str, step: _BatchStep, record: int) -> None:
        self.text = text
        self.step = step
        self.record = record
        self.container: Any = None
        self.key: Any = None


class Ctx:
    """The record being transformed, as every closure sees it (one per batch, moved from record to record)."""

    __slots__ = ("deferred", "index", "path", "record")

    def __init__(self, record: dict[str, Any], index: int, deferred: list[Deferred]) -> None:
        self.record = record
        self.index = index
        self.deferred = deferred
        self.path = ""


@dataclass(slots=True)
class _BatchStep:
    """One field's batched operation: its function over the batch's values, and where it reports failures."""

    apply: BatchApply
    path: str


@dataclass(slots=True)
class _Built:
    """What compiling one value's type gives: its function (None: the value is kept as is) and more."""

    fn: Apply | None
    out_type: Any
    changed: bool  # the derived type differs from the written one
    may_defer: bool  # the function may leave ``Deferred`` placeholders (scan)
    # The path a failure inside ``fn`` is reported at; None for records, which report their own fields'.
    where: str | None
    nullable: bool = False  # ``fn`` takes non-null values only; a null passes through

    def apply(self) -> Apply | None:
        """``fn`` for any value of the type, nulls included (inside arrays and maps)."""
        if self.fn is None or not self.nullable:
            return self.fn
        return _nullable(self.fn)


class _Compiler:
    """Walks the schema model of one writer schema, and builds its record functions and derived schema."""

    def __init__(
        self,
        keys: Keys,
        tag_policy: dict[str, Any] | None,
        scanner: TextScanner | None,
        record_function: Callable[[list[tuple[str, _Built]]], RecordFunction],
    ) -> None:
        self.keys = keys
        self.policy = tag_policy or {}
        self.scanner = scanner
        self.problems: list[Problem] = []
        # Each named record's one definition in the derived schema: where it is, whether kept whole
        # ("kept") or anonymized field by field ("derived"), and that definition.
        self.named: dict[str, tuple[str, str, dict[str, Any]]] = {}
        # The derived definitions of records anonymized field by field where the writer refers to them by
        # name: ``define_at_first_use`` writes them at that use (their written definition was removed).
        self.derived_definitions: dict[str, dict[str, Any]] = {}
        # Records kept whole inside themselves (recursive types): (name, path); their definition must
        # come out unchanged, or the kept values do not fit it.
        self.kept_recursive: list[tuple[str, str]] = []
        # (path, subject) of each date_shift: the subject must name a field, checked once the record is read.
        self.shift_subjects: list[tuple[str, str]] = []
        self.pii: list[PiiField] = []
        self.pii_getters: list[Getter] = []
        self.generated: set[str] = set()
        self.rules: list[FieldRule] = []
        self.batch_steps: list[_BatchStep] = []
        self.record_function = record_function

    def problem(self, path: str, message: str, code: str = "invalid_rule") -> None:
        self.problems.append(Problem(path, code, message))

    # --- records --------------------------------------------------------------------------------------

    def record(self, node: Record) -> tuple[RecordFunction, dict[str, Any]]:
        schema = node.schema
        default = schema.get("anon.default")
        steps: list[tuple[str, _Built]] = []
        derived_fields: list[dict[str, Any]] = []
        for f in node.fields:
            name = f.schema.get("name")
            if not (isinstance(name, str) and AVRO_NAME.fullmatch(name)):
                # fastavro reads any string as a field name; a path is built from names joined by dots,
                # so a name with a dot (or none at all) would make two fields share one path
                self.problem(f.path, f"field name {name!r} is not an Avro name ([A-Za-z_][A-Za-z0-9_]*)")
                continue
            try:
                built = self.field(f, default)
            except RuleError as exc:
                self.problem(f.path, str(exc))
                continue
            if built is None:
                continue  # dropped
            derived = {k: v for k, v in f.schema.items() if k not in ANNOTATIONS and k != TAGS}
            derived["type"] = built.out_type
            if built.changed:
                derived.pop("default", None)
                if isinstance(built.out_type, list) and built.out_type and built.out_type[0] == "null":
                    derived["default"] = None
            derived_fields.append(derived)
            steps.append((name, built))
        derived_schema = {k: v for k, v in schema.items() if k not in ANNOTATIONS and k != "fields"}
        derived_schema["fields"] = derived_fields
        return self.record_function(steps), derived_schema

    def field(self, f: SchemaField, default: Any) -> _Built | None:
        entity = f.schema.get("pii")
        if entity is not None and not isinstance(entity, str):
            raise RuleError("pii must be an entity name such as EMAIL_ADDRESS")
        spec, source = self.rule_for(f.schema, default)
        node = f.node
        if source == "default" and _holds_record(node):
            # A record's default covers its own leaves; a nested record answers for its fields with its
            # own annotations and default (keeping it whole would let its PII fields skip the strict check).
            spec, source = None, "none"
        if entity:
            self.pii.append(PiiField(f.path, entity))
            self.pii_getters.append((entity, f.path, values_at(f.path)))
        if spec is None:
            if _holds_record(node):
                return self.typed(node, None, entity, source)
            self.problem(
                f.path,
                "no anon annotation, record default or tag policy covers this field",
                "unannotated_field",
            )
            self.rules.append(FieldRule(f.path, _type_name(node.written), entity, "(none)", "none", None))
            return None
        if _removes_field(spec):
            self.rules.append(FieldRule(f.path, _type_name(node.written), entity, spec["op"], source, None))
            return None
        return self.typed(node, spec, entity, source)

    def rule_for(self, f: Mapping[str, Any], default: Any) -> tuple[dict[str, Any] | None, str]:
        if "anon" in f:
            return _spec(f["anon"]), "field"
        for tag in f.get(TAGS, []) or []:
            if tag in self.policy:
                return _spec(self.policy[tag]), "tag"
        if default is not None:
            return _spec(default), "default"
        return None, "none"

    # --- types ----------------------------------------------------------------------------------------

    def typed(self, node: Node, spec: dict[str, Any] | None, entity: str | None, source: str) -> _Built:
        """How a value of ``node``'s type is transformed under ``spec``."""
        path = node.path
        if isinstance(node, Union):
            non_null = [b for b in node.branches if b.kind != "null"]
            if len(non_null) == 1 and len(node.branches) == 2:
                inner = self.typed(non_null[0], spec, entity, source)
                out = inner.out_type
                null_first = node.branches[0].kind == "null"
                out_union = out if isinstance(out, list) else ["null", out] if null_first else [out, "null"]
                nullable = inner.fn is not None
                return _Built(inner.apply(), out_union, inner.changed, inner.may_defer, inner.where, nullable)
            return self.leaf(node, spec, entity, source)
        if isinstance(node, Array | Map):
            inner = self.typed(node.items if isinstance(node, Array) else node.values, spec, entity, source)
            slot = "items" if isinstance(node, Array) else "values"
            derived = {**{k: v for k, v in node.schema.items() if k not in ANNOTATIONS}, slot: inner.out_type}
            fn = inner.apply()
            container = _array if isinstance(node, Array) else _map
            return _Built(
                None if fn is None else container(fn, inner.may_defer),
                derived,
                inner.changed,
                inner.may_defer,
                inner.where,
            )
        if isinstance(node, Record | Recursive):
            full = node.fullname
            if spec is not None:
                if operation_named(spec["op"]).passes_through:
                    self.rules.append(FieldRule(path, full, entity, spec["op"], source, full))
                    return _Built(None, self.kept_whole(node), False, False, path)
                raise RuleError(
                    f"{spec['op']} cannot apply to a record; annotate its fields, or keep/drop it whole"
                )
            if isinstance(node, Recursive):
                raise RuleError(
                    f"record {full} contains itself here (a recursive type): its fields cannot be "
                    "anonymized field by field at every depth; keep or drop this field whole"
                )
            used = self.named.get(full)
            if used is not None:
                how = "kept whole" if used[1] == "kept" else "anonymized field by field"
                raise RuleError(
                    f"record {full} is also used at {used[0] or 'the top level'} ({how}); a named type "
                    "has one definition in the derived schema: give each use its own record name"
                )
            self.named[full] = (path, "derived", {})
            fn, derived = self.record(node)
            self.named[full] = (path, "derived", derived)
            if isinstance(node.written, str):
                self.derived_definitions[full] = derived
                return _Built(fn, node.written, False, True, None)
            return _Built(fn, derived, False, True, None)
        if isinstance(node, Unknown):
            raise RuleError(f"unknown type {node.written}")
        return self.leaf(node, spec, entity, source)

    def kept_whole(self, node: Record | Recursive) -> Any:
        """The derived type of a record kept whole: its definition where the writer defines it, else its
        name (``define_at_first_use`` writes the definition at the first use that remains)."""
        full, path = node.fullname, node.path
        if isinstance(node, Recursive):
            self.kept_recursive.append((full, path))
            return full
        # The records defined inside a kept one are kept whole too: they cannot also be anonymized.
        for inner in _records_within(node):
            used = self.named.get(inner.fullname)
            if used is not None and used[1] == "derived":
                where = "" if inner is node else f" (inside {full})"
                raise RuleError(
                    f"record {inner.fullname} is kept whole here{where} but anonymized field by field at "
                    f"{used[0] or 'the top level'}; a named type has one definition in the derived "
                    "schema: give the kept one its own record name"
                )
            if used is None:
                self.named[inner.fullname] = (inner.path, "kept", {})
        if isinstance(node.written, str):
            return node.written
        return strip_annotations(node.schema)

    def check_kept_recursive(self) -> None:
        """A record kept whole inside itself holds raw values at every depth below: only a record whose
        every field is kept can be, or the kept copies carry what the outer levels anonymize."""
        for full, path in self.kept_recursive:
            where = self.named.get(full, ("", "kept", {}))[0]
            changed = [
                rule.path
                for rule in self.rules
                if rule.op != "keep"
                and (not where or rule.path == where or rule.path.startswith(f"{where}."))
            ]
            if changed:
                self.problem(
                    path,
                    f"record {full} is kept whole here, inside itself, but {changed[0]} is anonymized in "
                    "it: the kept copies would carry the raw values; drop this field, or keep every field "
                    "of the record",
                )

    def leaf(self, node: Node, spec: dict[str, Any] | None, entity: str | None, source: str) -> _Built:
        """A value the operation takes whole: a primitive, an enum or fixed, or a union of several types."""
        if spec is None:
            raise RuleError("no rule")
        op_cls = operation_named(spec["op"])
        avro, resolved, path = node.written, node.schema, node.path
        value_type = resolved
        if isinstance(node, Union):
            if not op_cls.whole_values:
                raise RuleError(f"unions of several non-null types take only {_whole_value_operations()}")
        elif isinstance(node, Enum | Fixed):
            if node.kind not in op_cls.named_kinds:
                raise RuleError(f"{spec['op']} cannot apply to an {node.kind}")
            value_type = NAMED_VALUE_TYPES[node.kind]  # what the operation sees: the symbol, or the bytes
        op = op_cls(spec, value_type, self.keys)
        if spec.get("method") == "date_shift" and isinstance(spec.get("subject"), str):
            self.shift_subjects.append((path, spec["subject"]))
        out_type = avro if op.passes_through else op.output_type()
        if not op.passes_through and logical_type(out_type) == "uuid":
            out_type = "string"  # a masked, redacted or tokenized uuid is a string, not a uuid
        if out_type == resolved:
            out_type = avro  # keep the named reference
        changed = out_type != avro
        self.rules.append(FieldRule(path, _type_name(avro), entity, op.name, source, _type_name(out_type)))
        if op.generated:
            self.generated.add(path)  # leaf path in the verifier's notation (tags[], attrs{})
        if op.batched:
            return _Built(self._deferred(op, path), out_type, False, True, path)
        if op.passes_through:
            return _Built(None, out_type, False, False, path)
        return _Built(op.build(), out_type, changed, False, path)

    def _deferred(self, op: Operation, path: str) -> Apply:
        """The record pass of a batched operation: each value is left as a ``Deferred`` for the batch."""
        step = _BatchStep(op.build_batch(self.scanner), path)
        self.batch_steps.append(step)

        def defer(value: str, ctx: Ctx) -> Deferred:
            d = Deferred(value, step, ctx.index)
            ctx.deferred.append(d)
            return d

        return defer


# The value a named leaf type holds, as an operation sees it: an enum's symbol, a fixed's bytes.
NAMED_VALUE_TYPES = {"enum": "string", "fixed": "bytes"}


def _holds_record(node: Node) -> bool:
    """Whether a value of ``node``'s type is, or holds, a record (which annotates its own fields)."""
    if isinstance(node, Union):
        non_null = [b for b in node.branches if b.kind != "null"]
        return len(non_null) == 1 and _holds_record(non_null[0])
    if isinstance(node, Array):
        return _holds_record(node.items)
    if isinstance(node, Map):
        return _holds_record(node.values)
    return isinstance(node, Record | Recursive)


def _records_within(node: Node) -> list[Record]:
    """``node`` and the records below it, if it is a record (not through references to enclosing ones)."""
    found: list[Record] = []
    stack = [node]
    while stack:
        here = stack.pop()
        if isinstance(here, Record):
            found.append(here)
            stack.extend(f.node for f in reversed(here.fields))
        elif isinstance(here, Array):
            stack.append(here.items)
        elif isinstance(here, Map):
            stack.append(here.values)
        elif isinstance(here, Union):
            stack.extend(reversed(here.branches))
    return found


def _field_at(root: Record, dotted: str) -> Node | None:
    """The node of the field at a dotted path from the top level (through nullable records), or None."""
    node: Node = root
    for name in dotted.split("."):
        if isinstance(node, Union):
            non_null = [b for b in node.branches if b.kind != "null"]
            node = non_null[0] if len(non_null) == 1 else node
        if not isinstance(node, Record):
            return None
        found = next((f.node for f in node.fields if f.name == name), None)
        if found is None:
            return None
        node = found
    return node


def _removes_field(spec: dict[str, Any]) -> bool:
    op_cls = REGISTRY.get(spec["op"])
    return op_cls is not None and op_cls.removes_field


def _whole_value_operations() -> str:
    names = sorted(name for name, cls in REGISTRY.items() if cls.whole_values or cls.removes_field)
    return f"{', '.join(names[:-1])} or {names[-1]}"


def _spec(raw: Any) -> dict[str, Any]:
    if isinstance(raw, str):
        return {"op": raw}
    if isinstance(raw, dict) and isinstance(raw.get("op"), str):
        return dict(raw)
    raise RuleError('anon must be an operation name or an object {"op": NAME, ...}')


def _type_name(avro: Any) -> str:
    if isinstance(avro, str):
        return avro
    if isinstance(avro, list):
        return "|".join(_type_name(b) for b in avro)
    if isinstance(avro, dict):
        kind = avro.get("type")
        if kind == "array":
            return f"array<{_type_name(avro['items'])}>"
        if kind == "map":
            return f"map<{_type_name(avro['values'])}>"
        if kind in ("record", "enum", "fixed"):
            return str(avro.get("name"))
        lt = avro.get("logicalType")
        return f"{kind}({lt})" if lt else str(kind)
    return str(avro)


def _nullable(inner: Apply) -> Apply:
    return lambda value, ctx: None if value is None else inner(value, ctx)


def _array(inner: Apply, may_defer: bool) -> Apply:
    if not may_defer:
        return lambda value, ctx: [inner(x, ctx) for x in value]

    def apply(value: list[Any], ctx: Ctx) -> list[Any]:
        out = [inner(x, ctx) for x in value]
        for i, x in enumerate(out):
            if x.__class__ is Deferred:
                x.container, x.key = out, i
        return out

    return apply


def _map(inner: Apply, may_defer: bool) -> Apply:
    if not may_defer:
        return lambda value, ctx: {k: inner(x, ctx) for k, x in value.items()}

    def apply(value: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        out = {k: inner(x, ctx) for k, x in value.items()}
        for k, x in out.items():
            if x.__class__ is Deferred:
                x.container, x.key = out, k
        return out

    return apply


RecordFunction = Callable[[dict[str, Any], Ctx], dict[str, Any]]


def _record_parts(
    steps: list[tuple[str, _Built]],
) -> tuple[list[str], list[tuple[str, _Built]], list[tuple[str, Apply, bool]]]:
    """A record's steps in the order they run: fields kept as they are, leaf rules (which report their
    own path), then nested records and batched fields (function, whether it may defer)."""
    kept = [name for name, b in steps if b.fn is None]
    leaves = [(name, b) for name, b in steps if b.fn is not None and not b.may_defer and b.where is not None]
    later: list[tuple[str, Apply, bool]] = []
    for name, b in steps:
        fn = b.apply()
        if fn is not None and (b.may_defer or b.where is None):
            later.append((name, fn, b.may_defer))
    return kept, leaves, later


def interpreted_record_function(steps: list[tuple[str, _Built]]) -> RecordFunction:
    """One record's function as a loop over its steps: the specification of ``record_function``.

    Kept fields are copied, then each leaf rule is applied, then nested records and batched fields run.
    A failing value is reported at its field's path (``ctx.path``, set once, innermost first). Values
    are read before any rule runs, and nested records, which report their own fields, run after, so a
    value that is not a record at all is a schema mismatch (``KeyError``, ``TypeError``), not a rule
    failure.
    """
    kept, leaves, later = _record_parts(steps)

    def apply(record: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        out = {name: record[name] for name in kept}
        values = [record[name] for name, _ in leaves]
        where: str | None = ""
        try:
            for (name, b), value in zip(leaves, values, strict=True):
                where = b.where
                assert b.fn is not None
                out[name] = None if value is None and b.nullable else b.fn(value, ctx)
        except ValueRuleError:
            ctx.path = ctx.path or where or ""
            raise
        except (ValueError, TypeError, OverflowError) as exc:
            ctx.path = ctx.path or where or ""
            raise _converted(exc) from None
        for name, fn, may_defer in later:
            value = fn(record[name], ctx)
            out[name] = value
            if may_defer and value.__class__ is Deferred:
                value.container, value.key = out, name
        return out

    return apply


def record_function(steps: list[tuple[str, _Built]]) -> RecordFunction:
    """One record's function, generated: ``interpreted_record_function`` written out as straight-line code,
    one line per field, with no loop, tuple unpacking or wrapper per value, since it runs for every record.
    Only field names (``literal``) and names of the namespace below go into the source; the rules'
    functions are passed in, never written out.
    """
    kept, leaves, later = _record_parts(steps)
    namespace: dict[str, Any] = {
        "Deferred": Deferred,
        "ValueRuleError": ValueRuleError,
        "_converted": _converted,
    }
    copied = [f"{literal(name)}: record[{literal(name)}]" for name in kept]
    lines = ["def apply(record, ctx):", f"    out = {{{', '.join(copied)}}}"]
    for i, (name, _) in enumerate(leaves):
        lines.append(f"    v{i} = record[{literal(name)}]")
    if leaves:
        lines += ["    where = ''", "    try:"]
        for i, (name, b) in enumerate(leaves):
            namespace[f"f{i}"] = b.fn
            call = f"None if v{i} is None else f{i}(v{i}, ctx)" if b.nullable else f"f{i}(v{i}, ctx)"
            lines += [f"        where = {literal(b.where or '')}", f"        out[{literal(name)}] = {call}"]
        lines += [
            "    except ValueRuleError:",
            "        ctx.path = ctx.path or where",
            "        raise",
            "    except (ValueError, TypeError, OverflowError) as exc:",
            "        ctx.path = ctx.path or where",
            "        raise _converted(exc) from None",
        ]
    for i, (name, fn, may_defer) in enumerate(later):
        namespace[f"g{i}"] = fn
        if may_defer:
            lines += [
                f"    value = g{i}(record[{literal(name)}], ctx)",
                f"    out[{literal(name)}] = value",
                "    if value.__class__ is Deferred:",
                f"        value.container, value.key = out, {literal(name)}",
            ]
        else:
            lines.append(f"    out[{literal(name)}] = g{i}(record[{literal(name)}], ctx)")
    lines.append("    return out")
    apply: RecordFunction = generate("apply", lines, namespace, "record function")
    return apply


def _converted(exc: Exception) -> ValueRuleError:
    """A rule's own ``ValueError``/``TypeError``/``OverflowError`` as a failure that names no value."""
    return ValueRuleError(f"{type(exc).__name__} in rule")


class Plan:
    """A writer schema compiled into rules: apply it to batches of decoded records."""

    def __init__(
        self,
        writer_schema: dict[str, Any],
        derived_schema: dict[str, Any],
        apply_record: Callable[[dict[str, Any], Ctx], dict[str, Any]],
        compiler: _Compiler,
    ) -> None:
        import fastavro

        self.writer_schema = writer_schema
        self.derived_schema = derived_schema
        self.parsed_derived = fastavro.parse_schema(strip_logical_types(copy.deepcopy(derived_schema)))
        self.pii_fields = list(compiler.pii)
        self.generated_paths = frozenset(compiler.generated)
        self.field_rules = list(compiler.rules)
        self._apply = apply_record
        self.pii_getters: tuple[Getter, ...] = tuple(compiler.pii_getters)
        self._pii_values = pii_values_function(self.pii_getters)

    def pii_values(self, record: dict[str, Any]) -> list[tuple[str, str, str]]:
        """The record's raw values of ``"pii"`` fields as text: (entity, path, value)."""
        return self._pii_values(record)

    def apply_batch(self, records: list[dict[str, Any]]) -> list[dict[str, Any] | RuleFailure]:
        results: list[dict[str, Any] | RuleFailure] = []
        deferred: list[Deferred] = []
        ctx = Ctx({}, 0, deferred)  # one per batch, pointed at each record in turn: no object per record
        for i, record in enumerate(records):
            ctx.record, ctx.index, ctx.path = record, i, ""
            mark = len(deferred)
            try:
                results.append(self._apply(record, ctx))
            except ValueRuleError as exc:
                del deferred[mark:]
                results.append(RuleFailure(ctx.path or "?", "ValueRuleError", str(exc)))
            except (KeyError, TypeError, AttributeError) as exc:
                del deferred[mark:]
                results.append(
                    RuleFailure(ctx.path or "?", type(exc).__name__, "record does not match its schema")
                )
        if deferred:
            self._run_batches(records, deferred, results)
        return results

    def _run_batches(
        self,
        records: list[dict[str, Any]],
        deferred: list[Deferred],
        results: list[dict[str, Any] | RuleFailure],
    ) -> None:
        """Each batched operation once over its values in the batch; a value it fails fails its record."""
        by_step: dict[int, list[Deferred]] = defaultdict(list)
        for d in deferred:
            by_step[id(d.step)].append(d)
        known_cache: dict[int, list[tuple[str, str]]] = {}

        def known(i: int) -> list[tuple[str, str]]:
            if i not in known_cache:
                known_cache[i] = [(e, v) for e, _, v in self.pii_values(records[i])]
            return known_cache[i]

        for items in by_step.values():
            step = items[0].step
            outs = step.apply([d.text for d in items], [known(d.record) for d in items])
            for d, out in zip(items, outs, strict=True):
                if isinstance(out, ItemFailure):
                    results[d.record] = RuleFailure(step.path, out.error_class, out.message)
                else:
                    d.container[d.key] = out


def compile_plan(
    writer_schema: dict[str, Any],
    keys: Keys,
    *,
    tag_policy: dict[str, Any] | None = None,
    scanner: TextScanner | None = None,
    record_functions: Callable[[list[tuple[str, _Built]]], RecordFunction] | None = None,
) -> Plan:
    """Compile a record schema with annotations; raises ``SchemaRulesError`` listing every problem.

    ``record_functions`` builds each record's function (default: generated, ``record_function``; the
    property tests pass ``interpreted_record_function``)."""
    compiler = _Compiler(keys, tag_policy, scanner, record_functions or record_function)
    if not isinstance(writer_schema, dict) or writer_schema.get("type") != "record":
        raise SchemaRulesError([Problem("", "invalid_rule", "top-level schema must be a record")])
    root = resolve(writer_schema)
    if not isinstance(root, Record):
        raise SchemaRulesError([Problem("", "invalid_rule", "top-level schema must be a record")])
    compiler.named[root.fullname] = ("", "derived", {})
    try:
        apply_record, derived = compiler.record(root)
    except RuleError as exc:
        raise SchemaRulesError([*compiler.problems, Problem("", "invalid_rule", str(exc))]) from None
    compiler.named[root.fullname] = ("", "derived", derived)
    compiler.check_kept_recursive()
    definitions = {full: strip_annotations(d) for full, d in named_types(writer_schema).items()}
    try:
        derived = define_at_first_use(derived, {**definitions, **compiler.derived_definitions})
    except DefinitionProblem as exc:
        compiler.problem(exc.path, exc.message)
    for path, subject in compiler.shift_subjects:
        target = _field_at(root, subject)
        if target is None:
            compiler.problem(
                path,
                f"generalize date_shift: subject {subject!r} names no field of the record "
                "(a dotted path from the top level, such as user.id)",
            )
        elif isinstance(target, Array | Map | Record | Recursive):
            compiler.problem(
                path,
                f"generalize date_shift: subject {subject!r} must be a single value, not a {target.kind}",
            )
    if compiler.problems:
        raise SchemaRulesError(compiler.problems)
    if compiler.batch_steps and scanner is None:
        raise SchemaRulesError([Problem("", "invalid_rule", "scan rules need a scanner")])
    try:
        return Plan(writer_schema, derived, apply_record, compiler)
    except (SchemaParseException, UnknownType, ValueError, TypeError) as exc:
        # Whatever the checks above missed is still a message, never a traceback.
        raise SchemaRulesError(
            [Problem("", "invalid_rule", f"the derived schema is not valid Avro: {exc}")]
        ) from None
