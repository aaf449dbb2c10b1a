"""The audit of a topic: read it, look for PII in every string, report per field and entity.

The audit is the after-the-fact proof that the pipeline does not leak: it reads a topic (normally the
sanitized one) from the beginning or from a time, up to the end offsets seen when it starts, decodes
each record and runs the full detection over every string value: the validated detectors
(``stream_anon.detection.validated``) and, when a scanner is given, Presidio with NER (batched). It
counts, per field path and entity, the records with a suspected leak, and keeps a few examples with
the suspect span masked (``j***@e***.com``): the report never holds a whole value.

``kafka.reader.TopicReader`` does the Kafka part, ``Auditor`` the detection and counting, ``AuditReport``
the result.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stream_anon.detection import TextScanner
from stream_anon.detection.contextual import VERIFIER
from stream_anon.detection.validated import DetectorSet, partial_mask
from stream_anon.kafka.reader import TopicReader
from stream_anon.records import SEAL_HEADER
from stream_anon.walk import Walker, compile_walker, walk_untyped
from stream_anon.wire import WireError

MAX_EXAMPLES = 3


class AuditError(Exception):
    """The audit cannot run (the schema source is unreachable, NER is not available); the message says
    why, without values. (A topic that cannot be read raises ``kafka.reader.TopicReadError``.)"""


# --- detection ----------------------------------------------------------------------------------


@dataclass(slots=True)
class FieldFindings:
    """Suspected leaks of one entity at one field path."""

    path: str
    entity: str
    records: int = 0
    examples: list[str] = field(default_factory=list)


@dataclass(slots=True)
class AuditReport:
    topic: str
    records_read: int = 0
    decoded: int = 0
    undecodable: Counter[str] = field(default_factory=Counter)
    sealed: int = 0
    """Dead letters sealed at rest: unreadable without the keys file, so not audited."""
    role: str = ""
    """What the topic is, when the configuration says (``dead-letter topic``)."""
    strings_scanned: int = 0
    suspect_records: int = 0
    ner: bool = False
    complete: bool = True
    findings: dict[tuple[str, str], FieldFindings] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Share of decoded records with at least one suspected leak."""
        return self.suspect_records / self.decoded if self.decoded else 0.0

    def field_rate(self, found: FieldFindings) -> float:
        return found.records / self.decoded if self.decoded else 0.0

    def sorted_findings(self) -> list[FieldFindings]:
        return sorted(self.findings.values(), key=lambda f: (-f.records, f.path, f.entity))

    def to_dict(self, fail_above: float | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "topic": self.topic,
            "role": self.role,
            "records_read": self.records_read,
            "decoded": self.decoded,
            "undecodable": dict(sorted(self.undecodable.items())),
            "sealed": self.sealed,
            "strings_scanned": self.strings_scanned,
            "ner": self.ner,
            "complete": self.complete,
            "suspect_records": self.suspect_records,
            "rate": self.rate,
            "findings": [
                {
                    "path": f.path,
                    "entity": f.entity,
                    "records": f.records,
                    "rate": self.field_rate(f),
                    "examples": f.examples,
                }
                for f in self.sorted_findings()
            ],
        }
        if fail_above is not None:
            data["fail_above"] = fail_above
            data["passed"] = self.rate <= fail_above
        return data

    def to_json(self, fail_above: float | None = None) -> str:
        return json.dumps(self.to_dict(fail_above), indent=2)

    def to_table(self, fail_above: float | None = None) -> str:
        undecodable = sum(self.undecodable.values())
        lines = [
            f"audit of {self.topic}: {self.records_read} records read, {self.decoded} decoded, "
            f"{undecodable} undecodable, {self.strings_scanned} strings scanned"
            + ("" if self.ner else " (validated detectors only, no NER)"),
        ]
        if self.role:
            lines[0] = lines[0].replace(f"audit of {self.topic}:", f"audit of {self.topic} ({self.role}):", 1)
        if undecodable:
            reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(self.undecodable.items()))
            lines.append(f"undecodable by reason: {reasons}")
        if self.sealed:
            lines.append(f"{self.sealed} sealed dead letter(s): no raw bytes readable without the keys file")
        elif self.role == "dead-letter topic" and self.decoded:
            lines.append("dead letters not sealed: this topic holds the raw records (docs/dead-letter.md)")
        if not self.complete:
            lines.append("incomplete: the end offsets were not reached (an open transaction?)")
        lines.append("")
        findings = self.sorted_findings()
        if findings:
            header = ("path", "entity", "records", "rate", "examples (masked)")
            rows = [
                (f.path, f.entity, str(f.records), f"{self.field_rate(f):.2%}", ", ".join(f.examples))
                for f in findings
            ]
            widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
            for row in [header, *rows]:
                lines.append(
                    "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4]
                )
        else:
            lines.append("no suspected leaks")
        lines.append("")
        summary = f"suspected leaks in {self.suspect_records} of {self.decoded} records ({self.rate:.2%})"
        if fail_above is not None:
            verdict = "PASS" if self.rate <= fail_above else "FAIL"
            summary += f"; threshold {fail_above:.2%}: {verdict}"
        lines.append(summary)
        return "\n".join(lines)


class Auditor:
    """Counts suspected leaks in decoded records; NER runs in batches of ``batch_size`` strings."""

    def __init__(
        self,
        topic: str,
        scanner: TextScanner | None = None,
        *,
        entities: frozenset[str] | None = None,
        threshold: float | None = None,
        batch_size: int = 64,
        ignore_paths: frozenset[str] = frozenset(),
        detectors: DetectorSet = VERIFIER,
        role: str = "",
    ) -> None:
        self.report = AuditReport(topic=topic, ner=scanner is not None, role=role)
        self._scanner = scanner
        self._entities = entities
        self._threshold = threshold
        self._batch_size = batch_size
        self._ignore = ignore_paths
        self._detectors = detectors
        self._walkers: dict[int, tuple[Any, Walker]] = {}
        # Strings waiting for NER: (record number, path, text).
        self._pending: list[tuple[int, str, str]] = []

    def undecodable(self, reason: str) -> None:
        self.report.records_read += 1
        self.report.undecodable[reason] += 1

    def sealed(self) -> None:
        self.report.records_read += 1
        self.report.sealed += 1

    def add(self, record: dict[str, Any], schema: Any | None = None) -> None:
        """One decoded record; ``schema`` (parsed or as written) gives exact paths for maps and unions."""
        report = self.report
        report.records_read += 1
        report.decoded += 1
        number = report.decoded
        for path, text, _, _, _ in self._walker(schema)(record):
            if path in self._ignore or not text:
                continue
            self._pending.append((number, path, text))
        if len(self._pending) >= self._batch_size:
            self.flush()

    def finish(self) -> AuditReport:
        self.flush()
        return self.report

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        self.report.strings_scanned += len(pending)
        spans: list[list[tuple[int, int, str]]] = [
            [(f.start, f.end, f.entity) for f in self._detectors.find(text)] for _, _, text in pending
        ]
        if self._scanner is not None:
            texts = [text for _, _, text in pending]
            detected = self._scanner.detect_batch(
                texts, [() for _ in texts], entities=self._entities, threshold=self._threshold
            )
            for found, more in zip(spans, detected, strict=True):
                found.extend((s.start, s.end, s.entity) for s in more)
        self._count(pending, spans)

    def _count(self, pending: list[tuple[int, str, str]], spans: list[list[tuple[int, int, str]]]) -> None:
        report = self.report
        hits: set[tuple[int, str, str]] = set()
        suspects: set[int] = set()
        for (number, path, text), found in zip(pending, spans, strict=True):
            for start, end, entity in found:
                found_here = report.findings.get((path, entity))
                if found_here is None:
                    found_here = report.findings[(path, entity)] = FieldFindings(path, entity)
                if (number, path, entity) not in hits:
                    hits.add((number, path, entity))
                    found_here.records += 1
                if len(found_here.examples) < MAX_EXAMPLES:
                    example = partial_mask(entity, text[start:end])
                    if example not in found_here.examples:
                        found_here.examples.append(example)
                suspects.add(number)
        # A record's strings are never split across two flushes (see ``add``), so counts are exact.
        report.suspect_records += len(suspects)

    def _walker(self, schema: Any | None) -> Walker:
        if schema is None:
            return walk_untyped
        cached = self._walkers.get(id(schema))
        if cached is None or cached[0] is not schema:
            cached = (schema, compile_walker(schema))
            self._walkers[id(schema)] = cached
        return cached[1]


# --- the whole run --------------------------------------------------------------------------------

Decode = Callable[[bytes | None], tuple[dict[str, Any], Any]]
"""Decodes a message value to (record, writer schema); raises ``WireError`` when it cannot."""


def run_audit(
    reader: TopicReader,
    decode: Decode,
    auditor: Auditor,
    *,
    max_records: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> AuditReport:
    """Read, decode and audit; undecodable records are counted by their reason, not audited."""
    for read, message in enumerate(reader, start=1):
        if _sealed(message.headers()):
            auditor.sealed()
            if progress is not None:
                progress(1)
            if max_records is not None and read >= max_records:
                break
            continue
        try:
            record, schema = decode(message.value())
        except AuditError:
            raise
        except WireError as exc:
            auditor.undecodable(exc.kind.value)
        except Exception as exc:
            auditor.undecodable(type(exc).__name__)
        else:
            auditor.add(record, schema)
        if progress is not None:
            progress(1)
        if max_records is not None and read >= max_records:
            break
    report = auditor.finish()
    report.complete = reader.complete
    return report


def _sealed(headers: Any) -> bool:
    """Whether a record is a dead letter sealed at rest (``stream_anon.dlq.seal``)."""
    return isinstance(headers, list) and any(name == SEAL_HEADER for name, _ in headers)
