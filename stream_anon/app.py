"""Assembly: build the pipeline's parts from ``Settings``. The only place that knows how they fit."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from stream_anon import heap
from stream_anon.config import ConfigError, Settings
from stream_anon.detection import ScanSettings, Span, TextScanner
from stream_anon.dlq.seal import DeadLetterSeal
from stream_anon.keys import Keys
from stream_anon.pipeline import Pipeline
from stream_anon.registry import DerivedSchemaRejected
from stream_anon.rules import Plan, SchemaRulesError, compile_plan
from stream_anon.schemas import SchemaResolver, open_resolver
from stream_anon.verify import Verifier
from stream_anon.wire import decode_payload, parse_frame


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
                from stream_anon.detection.scanner import Scanner  # loads Presidio and spaCy

                self._scanner = Scanner(self._settings)
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


def dead_letter_sealing(settings: Settings) -> DeadLetterSeal | None:
    """The worker's dead-letter sealing: on when the keys file names a ``dlq_encryption_key``; a
    configuration that requires it and a keys file without it is an error, never a silent raw copy."""
    keys = load_keys(settings.keys_file)
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


def plan_compiler(
    settings: Settings, on_scan: Callable[[str, int], None] | None = None
) -> Callable[[dict[str, Any]], Plan]:
    keys = load_keys(settings.keys_file)
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
) -> Pipeline:
    """The worker's pipeline; the schema registry, if any, must pass the start-up check."""
    return Pipeline(
        resolver=open_resolver(settings, check=True),
        compile_plan=plan_compiler(settings, on_scan),
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
    """Decodes framed records (single-object or Confluent) with the writer schemas a resolver knows."""

    def __init__(self, resolver: SchemaResolver) -> None:
        self.resolver = resolver

    def read(self, value: bytes) -> dict[str, Any]:
        framing, ident, start = parse_frame(value)
        writer = self.resolver.lookup(framing, ident)
        return decode_payload(value, start, writer.parsed, writer.ref)


def open_reader(settings: Settings) -> SanitizedReader:
    """A reader of the sanitized topic for another process (aggregate, risk, audit).

    With a registry, derived schemas resolve by id. With a schemas directory, the derived schemas are
    not files: they are derived here from every annotated schema, exactly as the worker derives them.
    """
    resolver = open_resolver(settings, check=True)
    if resolver.directory is not None:
        keys = load_keys(settings.keys_file) if settings.keys_file else Keys.ephemeral()
        policy = load_tag_policy(settings.tag_policy_file)
        for writer in resolver.directory.schemas():
            try:
                plan = compile_plan(writer.schema, keys, tag_policy=policy, scanner=CompileOnlyScanner())
            except SchemaRulesError:
                continue  # its records were dead-lettered: nothing of it is in the sanitized topic
            resolver.directory.add(plan.derived_schema)
    return SanitizedReader(resolver)
