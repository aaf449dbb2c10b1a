"""Compile an annotated writer schema once into a ``Plan``; apply it to batches of records.

Compilation walks the schema, resolves each field's rule (its ``anon``, else a tag policy, else the
record's ``anon.default``), checks it against the field's type, and builds a plain closure per rule.
Each record type becomes one function, generated as straight-line code that calls those closures
(``_record_fn``), and so does ``Plan.pii_values``. The per-record path then runs that code only: no
schema walking, no rule lookups, no loop over the fields.

Operations come from ``stream_anon.ops`` and are asked only for their capabilities (what types they
take, whether they pass the value through, remove the field or run per batch), never by name. A batched
operation's (``scan``) closure leaves a ``Deferred`` placeholder, and once the whole batch has been
transformed the plan runs each batched field's function once over all its values.
"""

from __future__ import annotations

import copy
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

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
from stream_anon.schema import ANNOTATIONS, TAGS, strip_annotations, strip_logical_types

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
# The form the Avro specification gives a name; every field name must have it.
AVRO_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# A pii field's reader: (entity, path, the function that collects its raw values from a record).
Getter = tuple[str, str, Callable[[dict[str, Any]], Sequence[Any]]]


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
    def __init__(self, keys: Keys, tag_policy: dict[str, Any] | None, scanner: TextScanner | None) -> None:
        self.keys = keys
        self.policy = tag_policy or {}
        self.scanner = scanner
        self.problems: list[Problem] = []
        self.named: dict[str, Any] = {}  # full name -> definition as written
        self.derived_named: set[str] = set()
        self.pii: list[PiiField] = []
        self.pii_getters: list[Getter] = []
        self.generated: set[str] = set()
        self.rules: list[FieldRule] = []
        self.batch_steps: list[_BatchStep] = []

    def problem(self, path: str, message: str, code: str = "invalid_rule") -> None:
        self.problems.append(Problem(path, code, message))

    # --- named types --------------------------------------------------------------------------------

    def fullname(self, schema: dict[str, Any], namespace: str | None) -> str:
        name = str(schema.get("name", ""))
        if "." in name:
            return name
        ns = schema.get("namespace", namespace)
        return f"{ns}.{name}" if ns else name

    def resolve(self, avro: Any, namespace: str | None) -> Any:
        if isinstance(avro, str) and avro not in PRIMITIVES:
            for candidate in (avro, f"{namespace}.{avro}" if namespace else avro):
                if candidate in self.named:
                    return self.named[candidate]
            raise RuleError(f"unknown type {avro}")
        if isinstance(avro, dict) and avro.get("type") in ("record", "enum", "fixed"):
            self.named.setdefault(self.fullname(avro, namespace), avro)
        return avro

    # --- records --------------------------------------------------------------------------------------

    def record(
        self, schema: dict[str, Any], path: str, namespace: str | None
    ) -> tuple[Callable[[dict[str, Any], Ctx], dict[str, Any]], dict[str, Any]]:
        full = self.fullname(schema, namespace)
        ns = full.rpartition(".")[0] or None
        self.named[full] = schema
        default = schema.get("anon.default")
        steps: list[tuple[str, _Built]] = []
        derived_fields: list[dict[str, Any]] = []
        for f in schema.get("fields", []):
            name = f["name"]
            fpath = f"{path}.{name}" if path else name
            if not (isinstance(name, str) and AVRO_NAME.fullmatch(name)):
                # fastavro reads any string as a field name; a path is built from names joined by dots,
                # so a name with a dot (or none at all) would make two fields share one path
                self.problem(fpath, f"field name {name!r} is not an Avro name ([A-Za-z_][A-Za-z0-9_]*)")
                continue
            try:
                built = self.field(f, fpath, ns, default)
            except RuleError as exc:
                self.problem(fpath, str(exc))
                continue
            if built is None:
                continue  # dropped
            derived = {k: v for k, v in f.items() if k not in ANNOTATIONS and k != TAGS}
            derived["type"] = built.out_type
            if built.changed:
                derived.pop("default", None)
                if isinstance(built.out_type, list) and built.out_type and built.out_type[0] == "null":
                    derived["default"] = None
            derived_fields.append(derived)
            steps.append((name, built))
        derived_schema = {k: v for k, v in schema.items() if k not in ANNOTATIONS and k != "fields"}
        derived_schema["fields"] = derived_fields
        return _record_fn(steps), derived_schema

    def field(self, f: dict[str, Any], path: str, namespace: str | None, default: Any) -> _Built | None:
        entity = f.get("pii")
        if entity is not None and not isinstance(entity, str):
            raise RuleError("pii must be an entity name such as EMAIL_ADDRESS")
        spec, source = self.rule_for(f, default)
        ftype = f["type"]
        if entity:
            self.pii.append(PiiField(path, entity))
            self.pii_getters.append((entity, path, _getter(f["name"], path)))
        if spec is None:
            if self._is_record(ftype, namespace):
                return self.typed(ftype, path, namespace, None, entity, source)
            self.problem(
                path,
                "no anon annotation, record default or tag policy covers this field",
                "unannotated_field",
            )
            self.rules.append(FieldRule(path, _type_name(ftype), entity, "(none)", "none", None))
            return None
        if _removes_field(spec):
            self.rules.append(FieldRule(path, _type_name(ftype), entity, spec["op"], source, None))
            return None
        return self.typed(ftype, path, namespace, spec, entity, source)

    def rule_for(self, f: dict[str, Any], default: Any) -> tuple[dict[str, Any] | None, str]:
        if "anon" in f:
            return _spec(f["anon"]), "field"
        for tag in f.get(TAGS, []) or []:
            if tag in self.policy:
                return _spec(self.policy[tag]), "tag"
        if default is not None:
            return _spec(default), "default"
        return None, "none"

    def _is_record(self, avro: Any, namespace: str | None) -> bool:
        resolved = self.resolve(avro, namespace)
        if isinstance(resolved, list):
            non_null = [b for b in resolved if b != "null"]
            return len(non_null) == 1 and self._is_record(non_null[0], namespace)
        if isinstance(resolved, dict) and resolved.get("type") in ("array", "map"):
            return self._is_record(resolved.get("items", resolved.get("values")), namespace)
        return isinstance(resolved, dict) and resolved.get("type") == "record"

    # --- types ----------------------------------------------------------------------------------------

    def typed(
        self,
        avro: Any,
        path: str,
        namespace: str | None,
        spec: dict[str, Any] | None,
        entity: str | None,
        source: str,
    ) -> _Built:
        """How a value of ``avro`` is transformed under ``spec``."""
        resolved = self.resolve(avro, namespace)
        if isinstance(resolved, list):
            non_null = [b for b in resolved if b != "null"]
            if len(non_null) == 1 and len(resolved) == 2:
                inner = self.typed(non_null[0], path, namespace, spec, entity, source)
                out = inner.out_type
                out_union = (
                    out
                    if isinstance(out, list)
                    else ["null", out]
                    if resolved[0] == "null"
                    else [out, "null"]
                )
                nullable = inner.fn is not None
                return _Built(inner.apply(), out_union, inner.changed, inner.may_defer, inner.where, nullable)
            return self.leaf(avro, resolved, path, spec, entity, source)
        if isinstance(resolved, dict) and resolved.get("type") == "array":
            inner = self.typed(resolved["items"], f"{path}[]", namespace, spec, entity, source)
            derived = {**{k: v for k, v in resolved.items() if k not in ANNOTATIONS}, "items": inner.out_type}
            fn = inner.apply()
            return _Built(
                None if fn is None else _array(fn, inner.may_defer),
                derived,
                inner.changed,
                inner.may_defer,
                inner.where,
            )
        if isinstance(resolved, dict) and resolved.get("type") == "map":
            inner = self.typed(resolved["values"], f"{path}{{}}", namespace, spec, entity, source)
            derived = {
                **{k: v for k, v in resolved.items() if k not in ANNOTATIONS},
                "values": inner.out_type,
            }
            fn = inner.apply()
            return _Built(
                None if fn is None else _map(fn, inner.may_defer),
                derived,
                inner.changed,
                inner.may_defer,
                inner.where,
            )
        if isinstance(resolved, dict) and resolved.get("type") == "record":
            full = self.fullname(resolved, namespace)
            if spec is not None:
                if operation_named(spec["op"]).passes_through:
                    self.rules.append(FieldRule(path, full, entity, spec["op"], source, full))
                    return _Built(
                        None,
                        strip_annotations(resolved) if full not in self.derived_named else full,
                        False,
                        False,
                        path,
                    )
                raise RuleError(
                    f"{spec['op']} cannot apply to a record; annotate its fields, or keep/drop it whole"
                )
            if full in self.derived_named:
                raise RuleError(f"record {full} is used twice; define it once per schema")
            self.derived_named.add(full)
            fn, derived = self.record(resolved, path, namespace)
            return _Built(fn, derived, False, True, None)
        return self.leaf(avro, resolved, path, spec, entity, source)

    def leaf(
        self,
        avro: Any,
        resolved: Any,
        path: str,
        spec: dict[str, Any] | None,
        entity: str | None,
        source: str,
    ) -> _Built:
        """A value the operation takes whole: a primitive, an enum or fixed, or a union of several types."""
        if spec is None:
            raise RuleError("no rule")
        op_cls = operation_named(spec["op"])
        kind = resolved.get("type") if isinstance(resolved, dict) else None
        value_type = resolved
        if isinstance(resolved, list):
            if not op_cls.whole_values:
                raise RuleError(f"unions of several non-null types take only {_whole_value_operations()}")
        elif kind in NAMED_VALUE_TYPES:
            if kind not in op_cls.named_kinds:
                raise RuleError(f"{spec['op']} cannot apply to an {kind}")
            value_type = NAMED_VALUE_TYPES[kind]  # what the operation sees: the symbol, or the bytes
        op = op_cls(spec, value_type, self.keys)
        out_type = avro if op.passes_through else op.output_type()
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


def _getter(name: str, path: str) -> Callable[[dict[str, Any]], Sequence[Any]]:
    """Collect the raw values at a dotted path (through nested records, arrays and maps)."""
    parts = path.replace("[]", "").replace("{}", "").split(".")

    def get(record: dict[str, Any]) -> Sequence[Any]:
        values: list[Any] = [record]
        for part in parts:
            nxt: list[Any] = []
            for v in values:
                if isinstance(v, dict):
                    child = v.get(part)
                    if isinstance(child, list):
                        nxt.extend(child)
                    elif isinstance(child, dict) and part != parts[-1]:
                        nxt.append(child)
                    elif isinstance(child, dict):
                        nxt.extend(child.values())
                    elif child is not None:
                        nxt.append(child)
            values = nxt
        return values

    if "[]" in path or "{}" in path:
        return get

    def get_plain(record: dict[str, Any]) -> Sequence[Any]:
        # A path through plain records, the common case: a chain of lookups, one value or none.
        value: Any = record
        for part in parts:
            value = value.get(part) if value.__class__ is dict else None
        if value is None:
            return ()
        if value.__class__ is dict or value.__class__ is list:
            return get(record)  # a map or array field itself
        return (value,)

    return get_plain


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


def _record_fn(steps: list[tuple[str, _Built]]) -> Callable[[dict[str, Any], Ctx], dict[str, Any]]:
    """One record's function: kept fields copied, then each rule applied, as straight-line code.

    The function is generated from the steps (as ``dataclasses`` does for ``__init__``): one line per
    field, and no loop, tuple unpacking or wrapper per value (bench/README.md, row 14, has what that
    saved). Only field names (through ``repr``) and the names of the namespace below go into the
    source; the rules' functions are passed in, never written out.

    A failing value is reported at its field's path (``ctx.path``, set once, innermost first). Values
    are read before the ``try``, and nested records, which report their own fields, run after it, so a
    value that is not a record at all is a schema mismatch (``KeyError``, ``TypeError``), not a rule
    failure.
    """
    namespace: dict[str, Any] = {
        "Deferred": Deferred,
        "ValueRuleError": ValueRuleError,
        "_converted": _converted,
    }
    kept = [f"{name!r}: record[{name!r}]" for name, b in steps if b.fn is None]
    lines = [f"    out = {{{', '.join(kept)}}}"]
    leaves = [(name, b) for name, b in steps if b.fn is not None and not b.may_defer and b.where is not None]
    for i, (name, _) in enumerate(leaves):
        lines.append(f"    v{i} = record[{name!r}]")
    if leaves:
        lines += ["    where = ''", "    try:"]
        for i, (name, b) in enumerate(leaves):
            namespace[f"f{i}"] = b.fn
            call = f"None if v{i} is None else f{i}(v{i}, ctx)" if b.nullable else f"f{i}(v{i}, ctx)"
            lines += [f"        where = {b.where!r}", f"        out[{name!r}] = {call}"]
        lines += [
            "    except ValueRuleError:",
            "        ctx.path = ctx.path or where",
            "        raise",
            "    except (ValueError, TypeError, OverflowError) as exc:",
            "        ctx.path = ctx.path or where",
            "        raise _converted(exc) from None",
        ]
    for i, (name, b) in enumerate(steps):
        fn = b.apply()
        if fn is None or not (b.may_defer or b.where is None):
            continue
        namespace[f"g{i}"] = fn
        if b.may_defer:
            lines += [
                f"    value = g{i}(record[{name!r}], ctx)",
                f"    out[{name!r}] = value",
                "    if value.__class__ is Deferred:",
                f"        value.container, value.key = out, {name!r}",
            ]
        else:
            lines.append(f"    out[{name!r}] = g{i}(record[{name!r}], ctx)")
    source = "def apply(record, ctx):\n" + "\n".join([*lines, "    return out"]) + "\n"
    exec(compile(source, "<stream_anon.rules.plan: record function>", "exec"), namespace)
    apply: Callable[[dict[str, Any], Ctx], dict[str, Any]] = namespace["apply"]
    return apply


def _converted(exc: Exception) -> ValueRuleError:
    """A rule's own ``ValueError``/``TypeError``/``OverflowError`` as a failure that names no value."""
    return ValueRuleError(f"{type(exc).__name__} in rule")


def _pii_values_fn(getters: list[Getter]) -> Callable[[dict[str, Any]], list[tuple[str, str, str]]]:
    """``Plan.pii_values``, generated like the record function: the verifier calls it on every record.

    A path through plain records is a chain of lookups written out; a path through arrays or maps,
    and any value that is not a plain string, goes through ``_collect_values`` with its getter.
    """
    lines = ["def pii_values(record):", "    out = []", "    add = out.append"]
    for i, (entity, path, _) in enumerate(getters):
        if "[]" in path or "{}" in path:
            lines.append(f"    collect(getters[{i}], record, out)")
            continue
        lines.append("    v = record")
        for part in path.split("."):
            lines.append(f"    v = v.get({part!r}) if v.__class__ is dict else None")
        lines += [
            "    if v.__class__ is str:",
            f"        add(({entity!r}, {path!r}, v))",
            "    elif v is not None:",
            f"        collect(getters[{i}], record, out)",
        ]
    lines.append("    return out")
    namespace: dict[str, Any] = {"collect": _collect_values, "getters": tuple(getters)}
    exec(compile("\n".join(lines) + "\n", "<stream_anon.rules.plan: pii_values>", "exec"), namespace)
    pii_values: Callable[[dict[str, Any]], list[tuple[str, str, str]]] = namespace["pii_values"]
    return pii_values


def _collect_values(getter: Getter, record: dict[str, Any], out: list[tuple[str, str, str]]) -> None:
    entity, path, get = getter
    for value in get(record):
        if value.__class__ is str:
            out.append((entity, path, value))
        elif isinstance(value, (str, int)) and not isinstance(value, bool):
            out.append((entity, path, str(value)))


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
        self._pii_values = _pii_values_fn(compiler.pii_getters)

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
) -> Plan:
    """Compile a record schema with annotations; raises ``SchemaRulesError`` listing every problem."""
    compiler = _Compiler(keys, tag_policy, scanner)
    if not isinstance(writer_schema, dict) or writer_schema.get("type") != "record":
        raise SchemaRulesError([Problem("", "invalid_rule", "top-level schema must be a record")])
    try:
        apply_record, derived = compiler.record(writer_schema, "", None)
    except RuleError as exc:
        raise SchemaRulesError([*compiler.problems, Problem("", "invalid_rule", str(exc))]) from None
    if compiler.problems:
        raise SchemaRulesError(compiler.problems)
    if compiler.batch_steps and scanner is None:
        raise SchemaRulesError([Problem("", "invalid_rule", "scan rules need a scanner")])
    return Plan(writer_schema, derived, apply_record, compiler)
