"""Assembly: build every command's parts from ``Settings``. The only place that knows how they fit.

The schema resolver is opened here and only here (``open_schemas``); so is the reader of sanitized
records (``sanitized_reader``) that the aggregate job, the risk report and the audit share, the
worker's pipeline (``build_pipeline``) and the file-mode plan of ``anonymize`` (``file_plan``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from stream_anon import heap
from stream_anon.config import ConfigError, Settings
from stream_anon.detection import ScannerUnavailable, ScanSettings, Span, TextScanner
from stream_anon.dlq.seal import DeadLetterSeal
from stream_anon.keys import Keys
from stream_anon.pipeline import Pipeline
from stream_anon.registry import DerivedSchemaRejected
from stream_anon.rules import Plan, SchemaRulesError, compile_plan
from stream_anon.schemas import SchemaResolver, WriterSchema, open_resolver, parse_writer_schema
from stream_anon.verify import Verifier
from stream_anon.wire import WireError, WireErrorKind, decode_payload, parse_frame

if TYPE_CHECKING:
    from stream_anon.aggregate.job import AggregateJob
    from stream_anon.aggregate.ledger import Ledger
    from stream_anon.aggregate.metrics import AggregateMetrics
    from stream_anon.aggregate.settings import AggregateSettings
    from stream_anon.health import Health


class LazyScanner:
    """Loads the NLP model on first use, so workers whose schemas never ``scan`` never pay for it."""

    def __init__(
        self, settings: ScanSettings | None = None, on_found: Callable[[str, int], None] | None = None
    ) -> None:
        self._settings = settings
        self._on_found = on_found
        self._scanner: TextScanner | None = None
        self._lock = threading.Lock()

    def _get(self) -> TextScanner:
        with self._lock:
            if self._scanner is None:
                try:
                    from stream_anon.detection.scanner import Scanner  # loads Presidio and spaCy

                    self._scanner = Scanner(self._settings)
                except (ImportError, OSError) as exc:
                    raise ScannerUnavailable(
                        f"the free-text scanner cannot load ({type(exc).__name__}: {exc}); "
                        "reinstall stream-anon with its dependencies"
                    ) from exc
                heap.settle()  # the model's objects live as long as the process
            return self._scanner

    def detect_batch(
        self,
        texts: Sequence[str],
        known: Sequence[Sequence[tuple[str, str]]],
        *,
        entities: frozenset[str] | None = None,
        threshold: float | None = None,
    ) -> list[list[Span]]:
        found = self._get().detect_batch(texts, known, entities=entities, threshold=threshold)
        if self._on_found is not None:
            counts: dict[str, int] = {}
            for spans in found:
                for span in spans:
                    counts[span.entity] = counts.get(span.entity, 0) + 1
            for entity, n in counts.items():
                self._on_found(entity, n)
        return found


def load_keys(path: Path | None) -> Keys:
    if path is None:
        return Keys.empty()
    return Keys.load(path)


def dead_letter_sealing(settings: Settings, keys: Keys | None = None) -> DeadLetterSeal | None:
    """The worker's dead-letter sealing: on when the keys file names a ``dlq_encryption_key``; a
    configuration that requires it and a keys file without it is an error, never a silent raw copy.
    ``keys``: the keys already loaded from ``settings.keys_file``, if the caller has them."""
    keys = keys if keys is not None else load_keys(settings.keys_file)
    if keys.dlq_encryption_key is not None:
        return DeadLetterSeal(keys)
    if settings.dlq_encryption_required:
        raise ConfigError(
            "dlq_encryption_required is set, but the keys file names no dlq_encryption_key "
            '(add "dlq_encryption_key": "<key name>" to it, or create one: '
            "stream-anon keys generate --dlq-key dlq)"
        )
    return None


def load_tag_policy(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"tag_policy_file {path}: {exc}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"tag_policy_file {path}: must map tag names to operations")
    return loaded


def open_schemas(settings: Settings) -> SchemaResolver:
    """The writer schemas of ``settings``: its schemas directory and/or its Schema Registry, which must
    pass the start-up check (answering as a registry within ``connect_timeout_s``)."""
    return open_resolver(settings, check=True)


def plan_compiler(
    settings: Settings, on_scan: Callable[[str, int], None] | None = None, keys: Keys | None = None
) -> Callable[[dict[str, Any]], Plan]:
    keys = keys if keys is not None else load_keys(settings.keys_file)
    policy = load_tag_policy(settings.tag_policy_file)
    scanner = LazyScanner(settings.scan, on_scan)

    def compile_one(schema: dict[str, Any]) -> Plan:
        return compile_plan(schema, keys, tag_policy=policy, scanner=scanner)

    return compile_one


def build_pipeline(
    settings: Settings,
    on_compiled: Callable[..., None] | None = None,
    on_leak: Callable[[str, str], None] | None = None,
    on_scan: Callable[[str, int], None] | None = None,
    on_rejected: Callable[[DerivedSchemaRejected], None] | None = None,
    keys: Keys | None = None,
) -> Pipeline:
    """The worker's pipeline; ``keys`` when the caller has loaded them already (the output key and the
    dead-letter seal use them too). The schema registry, if any, must pass the start-up check."""
    return Pipeline(
        resolver=open_schemas(settings),
        compile_plan=plan_compiler(settings, on_scan, keys),
        verifier=Verifier(on_leak=settings.on_leak),
        output_topic=settings.output_topic,
        on_compiled=on_compiled,
        on_leak=on_leak,
        on_rejected=on_rejected,
    )


class CompileOnlyScanner:
    """Lets ``scan`` rules compile where no text is scanned (lint, catalog, deriving schemas for readers)."""

    def detect_batch(
        self,
        texts: Sequence[str],
        known: Sequence[Sequence[tuple[str, str]]],
        *,
        entities: frozenset[str] | None = None,
        threshold: float | None = None,
    ) -> list[list[Span]]:
        raise RuntimeError("this scanner only compiles rules; it never scans")


class SanitizedReader:
    """Decodes framed records (single-object or Confluent) with the writer schemas a resolver knows.

    A sanitized record's schema is the derived schema of an annotated one. With a registry it resolves
    by id. With a schemas directory the derived schemas are not files: on the first fingerprint the
    directory does not know, ``derive`` adds them (compiled exactly as the worker compiles them).
    """

    def __init__(self, resolver: SchemaResolver, derive: Callable[[], None] | None = None) -> None:
        self.resolver = resolver
        self._derive = derive

    def writer(self, framing: Any, ident: bytes) -> WriterSchema:
        try:
            return self.resolver.lookup(framing, ident)
        except WireError as exc:
            if exc.kind is not WireErrorKind.UNKNOWN_SCHEMA or self._derive is None:
                raise
            derive, self._derive = self._derive, None
            derive()
            return self.resolver.lookup(framing, ident)

    def read_with_schema(self, value: bytes) -> tuple[dict[str, Any], Any]:
        """The record and its parsed writer schema."""
        framing, ident, start = parse_frame(value)
        writer = self.writer(framing, ident)
        return decode_payload(value, start, writer.parsed, writer.ref), writer.parsed

    def read(self, value: bytes) -> dict[str, Any]:
        return self.read_with_schema(value)[0]


def sanitized_reader(settings: Settings, resolver: SchemaResolver | None = None) -> SanitizedReader:
    """The reader of the sanitized topic for another process (aggregate, risk, audit)."""
    resolver = resolver if resolver is not None else open_schemas(settings)
    directory = resolver.directory
    if directory is None:
        return SanitizedReader(resolver)
    # Deriving a schema's shape needs keys only to compile its keyed rules: without a keys file,
    # throwaway keys derive the same schemas.
    keys = load_keys(settings.keys_file) if settings.keys_file else Keys.ephemeral()
    policy = load_tag_policy(settings.tag_policy_file)

    def derive() -> None:
        for writer in directory.schemas():
            try:
                plan = compile_plan(writer.schema, keys, tag_policy=policy, scanner=CompileOnlyScanner())
            except SchemaRulesError:
                continue  # its records were dead-lettered: nothing of it is in the sanitized topic
            directory.add(plan.derived_schema)

    return SanitizedReader(resolver, derive)


def aggregate_job(
    settings: Settings,
    aggregate: AggregateSettings,
    ledger: Ledger,
    metrics: AggregateMetrics | None = None,
    health: Health | None = None,
) -> AggregateJob:
    """The aggregate job of ``settings``, reading its source topic with the shared sanitized reader."""
    from stream_anon.aggregate.job import AggregateJob

    return AggregateJob(settings, aggregate, ledger, metrics, health, reader=sanitized_reader(settings))


def file_plan(
    schema_path: Path, keys_path: Path | None, policy_path: Path | None
) -> tuple[WriterSchema, Plan]:
    """``anonymize``'s writer schema and compiled plan (the scanner loads its model on first use)."""
    writer = parse_writer_schema(schema_path.read_text(encoding="utf-8"), ref=f"file:{schema_path.name}")
    scanner = LazyScanner(ScanSettings())
    plan = compile_plan(
        writer.schema, load_keys(keys_path), tag_policy=load_tag_policy(policy_path), scanner=scanner
    )
    return writer, plan
