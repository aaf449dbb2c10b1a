"""The pipeline: a batch of input records in, one outcome per record out, in order. No Kafka in here.

decode (wire) -> apply the compiled plan (rules) -> verify -> encode; every failure becomes a ``DeadLetter``.
Plans are compiled once per writer schema and cached, so the per-record path does no schema parsing.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import fastavro
import structlog

from stream_anon.records import DeadLetter, InputRecord, Outcome, Reason, Sanitized
from stream_anon.registry import DerivedSchemaRejected
from stream_anon.rules import Plan, RuleFailure, SchemaRulesError
from stream_anon.schema import strip_logical_types
from stream_anon.schemas import SchemaResolver, WriterSchema
from stream_anon.verify import Verifier
from stream_anon.wire import WireError, WireErrorKind, decode_payload, encode, parse_frame

log = structlog.get_logger(__name__)

STAGES = ("decode", "transform", "verify", "encode")

# How long a writer schema whose derived schema the registry refused is dead-lettered before the
# registry is asked again (an operator may change the subject's compatibility or delete a version).
REGISTRY_RETRY_S = 60.0


WIRE_REASONS: dict[WireErrorKind, Reason] = {
    WireErrorKind.EMPTY_VALUE: Reason.EMPTY_VALUE,
    WireErrorKind.UNKNOWN_FRAMING: Reason.UNKNOWN_FRAMING,
    WireErrorKind.UNKNOWN_SCHEMA: Reason.UNKNOWN_SCHEMA,
    WireErrorKind.INVALID_SCHEMA: Reason.INVALID_SCHEMA,
    WireErrorKind.UNDECODABLE: Reason.UNDECODABLE,
}
"""The dead-letter reason of each way a message cannot be read."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record the rules or the verifier refused, before it is tied to its Kafka source."""

    reason: Reason
    error_class: str
    message: str
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class CompiledSchema:
    """What one writer schema compiles to: a plan and how to write its output, or why it cannot be used."""

    writer: WriterSchema
    plan: Plan | None = None
    derived_parsed: Any = None
    header: bytes = b""
    rejection: Rejected | None = None
    # a rejection by the registry is asked again from this time on (monotonic): it can change its mind
    retry_at: float | None = None


def rejection_for(exc: SchemaRulesError) -> Rejected:
    """A schema whose rules do not compile: every record written with it is dead-lettered with the paths."""
    unannotated = [p for p in exc.problems if p.code == "unannotated_field"]
    reason = Reason.UNANNOTATED_FIELD if unannotated else Reason.INVALID_RULES
    shown = unannotated or exc.problems
    paths = ", ".join(p.path for p in shown[:10])
    first = shown[0].message if shown else ""
    return Rejected(
        reason,
        type(exc).__name__,
        f"{len(exc.problems)} problem(s) at {paths}: {first}",
        {"stream-anon.schema.paths": paths},
    )


def sanitize_batch(
    plan: Plan,
    verifier: Verifier,
    records: list[dict[str, Any]],
    clock: dict[str, float] | None = None,
    on_leak: Callable[[str, str], None] | None = None,
    timer: Callable[[], float] = time.perf_counter,
) -> list[dict[str, Any] | Rejected]:
    """Apply the plan, then verify each result (fail closed). Shared by the worker and the file mode.

    ``clock``, when given, accumulates the seconds (read from ``timer``) spent in ``transform`` and
    ``verify``; ``on_leak`` is told each suspected leak's entity and path, whether the record is
    dead-lettered or redacted.
    """
    t0 = timer()
    transformed = plan.apply_batch(records)
    t1 = timer()
    results: list[dict[str, Any] | Rejected] = []
    for raw, out in zip(records, transformed, strict=True):
        if isinstance(out, RuleFailure):
            results.append(
                Rejected(
                    Reason.RULE_FAILED,
                    out.error_class,
                    f"{out.path}: {out.message}",
                    {"stream-anon.rule.path": out.path},
                )
            )
            continue
        checked = verifier.check(plan, raw, out)
        if checked.leaks and on_leak is not None:
            for leak in checked.leaks:
                on_leak(leak.entity, leak.path)
        if checked.leaks and verifier.on_leak == "dead_letter":
            entities = ",".join(sorted({leak.entity for leak in checked.leaks}))
            paths = ",".join(sorted({leak.path for leak in checked.leaks}))
            results.append(
                Rejected(
                    Reason.LEAK_DETECTED,
                    "LeakDetected",
                    f"{len(checked.leaks)} suspected leak(s) of {entities} at {paths}",
                    {"stream-anon.leak.entity": entities, "stream-anon.leak.path": paths},
                )
            )
            continue
        results.append(checked.record)
    if clock is not None:
        clock["transform"] += t1 - t0
        clock["verify"] += timer() - t1
    return results


class Pipeline:
    """Turns a batch of ``InputRecord`` into outcomes; keeps one compiled plan per writer schema."""

    def __init__(
        self,
        resolver: SchemaResolver,
        compile_plan: Callable[[dict[str, Any]], Plan],
        verifier: Verifier,
        output_topic: str,
        on_compiled: Callable[[CompiledSchema], None] | None = None,
        on_leak: Callable[[str, str], None] | None = None,
        on_rejected: Callable[[DerivedSchemaRejected], None] | None = None,
    ) -> None:
        self.resolver = resolver
        self._on_rejected = on_rejected
        self._compile_plan = compile_plan
        self._verifier = verifier
        self._output_topic = output_topic
        self._on_compiled = on_compiled
        self._on_leak = on_leak
        self._compiled: dict[str, CompiledSchema] = {}
        self.stage_seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        # what ``stage_seconds`` is measured with: wall time; a profiling harness may use CPU time
        self.timer: Callable[[], float] = time.perf_counter

    def compiled(self, writer: WriterSchema) -> CompiledSchema:
        found = self._compiled.get(writer.ref)
        if found is not None:
            if found.retry_at is not None and time.monotonic() >= found.retry_at:
                self._register_derived(found)
            return found
        entry = CompiledSchema(writer)
        try:
            plan = self._compile_plan(writer.schema)
            entry.plan = plan
            entry.derived_parsed = fastavro.parse_schema(strip_logical_types(plan.derived_schema))
        except SchemaRulesError as exc:
            entry.plan = None
            entry.rejection = rejection_for(exc)
            log.warning(
                "schema_rejected",
                schema=writer.ref,
                reason=entry.rejection.reason.value,
                detail=entry.rejection.message,
            )
        except Exception as exc:  # fastavro rejects some derived schemas (recursive named types, ...)
            entry.plan = None
            entry.rejection = Rejected(
                Reason.INVALID_RULES,
                type(exc).__name__,
                "the sanitized schema derived from this writer schema does not parse",
            )
            log.warning("schema_rejected", schema=writer.ref, reason=entry.rejection.reason.value)
        if entry.plan is not None:
            # RegistryUnavailable propagates before the entry is kept: the batch is retried later and
            # the schema is not condemned for the registry's absence
            self._register_derived(entry)
        self._compiled[writer.ref] = entry
        if self._on_compiled is not None:
            self._on_compiled(entry)
        return entry

    def _register_derived(self, entry: CompiledSchema) -> None:
        """The derived schema's frame header; a registry refusal rejects the writer schema's records (other
        schemas keep flowing) until the registry is asked again ``REGISTRY_RETRY_S`` later."""
        assert entry.plan is not None
        try:
            entry.header = self.resolver.derived_header(entry.plan.derived_schema, self._output_topic)
        except DerivedSchemaRejected as exc:
            entry.rejection = Rejected(
                Reason.DERIVED_SCHEMA_REJECTED,
                type(exc).__name__,
                str(exc),
                {"stream-anon.registry.subject": exc.subject, "stream-anon.registry.message": exc.message},
            )
            entry.retry_at = time.monotonic() + REGISTRY_RETRY_S
            log.error(
                "derived_schema_rejected",
                schema=entry.writer.ref,
                subject=exc.subject,
                status=exc.status,
                registry_message=exc.message,
            )
            if self._on_rejected is not None:
                self._on_rejected(exc)
            return
        if entry.rejection is not None:
            log.info("derived_schema_accepted", schema=entry.writer.ref)
        entry.rejection = None
        entry.retry_at = None

    def process(self, batch: list[InputRecord]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(batch)
        groups: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
        entries: dict[str, CompiledSchema] = {}

        t0 = self.timer()
        for i, rec in enumerate(batch):
            ref: str | None = None
            try:
                framing, ident, start = parse_frame(rec.value)
                writer = self.resolver.lookup(framing, ident)
                ref = writer.ref
                entry = self.compiled(writer)
                if entry.rejection is not None:
                    outcomes[i] = _dead_letter(rec, entry.rejection, ref)
                    continue
                assert rec.value is not None
                # decode before touching ``groups``: an entry made for an undecodable first record
                # would leave ``entries`` without its schema
                record = decode_payload(rec.value, start, writer.parsed, ref)
                entries[ref] = entry
                groups[ref].append((i, record))
            except WireError as exc:
                outcomes[i] = DeadLetter(
                    rec, WIRE_REASONS[exc.kind], type(exc).__name__, str(exc), exc.schema_ref or ref
                )
        t1 = self.timer()
        self.stage_seconds["decode"] += t1 - t0

        for ref, members in groups.items():
            entry = entries[ref]
            assert entry.plan is not None
            results = sanitize_batch(
                entry.plan,
                self._verifier,
                [record for _, record in members],
                self.stage_seconds,
                self._on_leak,
                self.timer,
            )
            t_mid = self.timer()
            for (i, _), result in zip(members, results, strict=True):
                rec = batch[i]
                if isinstance(result, Rejected):
                    outcomes[i] = _dead_letter(rec, result, ref)
                    continue
                try:
                    outcomes[i] = Sanitized(rec, encode(entry.header, entry.derived_parsed, result), ref)
                except (
                    Exception
                ) as exc:  # fastavro raises ValueError/TypeError/OverflowError on misfit values
                    outcomes[i] = DeadLetter(
                        rec,
                        Reason.ENCODE_FAILED,
                        type(exc).__name__,
                        "sanitized record does not fit the derived schema",
                        ref,
                    )
            self.stage_seconds["encode"] += self.timer() - t_mid

        assert all(o is not None for o in outcomes)
        return outcomes  # type: ignore[return-value]


def _dead_letter(rec: InputRecord, rejected: Rejected, ref: str | None) -> DeadLetter:
    return DeadLetter(rec, rejected.reason, rejected.error_class, rejected.message, ref, dict(rejected.extra))
