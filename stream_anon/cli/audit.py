"""``stream-anon audit``: look for PII in a topic, report per field and entity, fail above a rate."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from stream_anon.audit import AuditError, Auditor, Decode, run_audit
from stream_anon.cli.run import fail, settings_from
from stream_anon.config import ConfigError, Settings
from stream_anon.detection import TextScanner
from stream_anon.kafka.reader import TopicReader, TopicReadError


@click.command()
@click.option(
    "--config",
    "config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML configuration file (broker, schemas, scan settings); STREAM_ANON_<KEY> overrides apply.",
)
@click.option("--topic", help="Topic to audit. Default: the configuration's output_topic.")
@click.option("--max-records", type=click.IntRange(min=1), help="Stop after this many records.")
@click.option(
    "--from-time",
    metavar="ISO",
    help="Start at the first record at or after this time (ISO 8601; UTC unless an offset is given) "
    "instead of the beginning.",
)
@click.option(
    "--format", "output_format", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.option(
    "--fail-above",
    type=click.FloatRange(0.0, 1.0),
    default=0.0,
    show_default=True,
    metavar="RATE",
    help="Exit 1 when the share of records with a suspected leak is above RATE (0.01 = 1 %).",
)
@click.option(
    "--ignore-path",
    multiple=True,
    metavar="PATH",
    help="A field path not to audit, e.g. one holding pseudonym tokens or IP prefixes. Repeatable.",
)
@click.option("--no-ner", is_flag=True, help="Validated detectors only: much faster, no names or places.")
def audit(
    config: Path | None,
    topic: str | None,
    max_records: int | None,
    from_time: str | None,
    output_format: str,
    fail_above: float,
    ignore_path: tuple[str, ...],
    no_ner: bool,
) -> None:
    """Audit a topic for PII: every string of every record, validated detectors plus Presidio NER.

    Reads the topic (read_committed) up to the end offsets seen at start, and prints per field path and
    entity the records with a suspected leak, their rate and up to three examples with the suspect span
    masked. Undecodable records are counted by reason. A progress bar runs on stderr.

    Exit status: 0 when the suspected-leak rate is at most --fail-above, 1 above it, 2 when the audit
    cannot run.
    """
    settings = settings_from(config)
    topic = topic or settings.output_topic
    start_ms = _parse_time(from_time) if from_time else None
    from stream_anon.logs import configure_logging

    configure_logging(settings.log_format, settings.log_level)
    try:
        with TopicReader(settings.librdkafka(), topic, purpose="audit", from_time_ms=start_ms) as reader:
            decode = _decoder(settings)
            scanner = None if no_ner else _scanner(settings)
            auditor = Auditor(
                topic,
                scanner,
                role="dead-letter topic" if topic == settings.dlq_topic else "",
                entities=frozenset(settings.scan.entities),
                threshold=settings.scan.threshold,
                batch_size=settings.scan.batch_size,
                ignore_paths=frozenset(ignore_path),
            )
            from tqdm import tqdm

            total = min(reader.total, max_records) if max_records else reader.total
            with tqdm(total=total, unit="rec", desc=f"auditing {topic}", file=sys.stderr, leave=False) as bar:
                report = run_audit(reader, decode, auditor, max_records=max_records, progress=bar.update)
    except (AuditError, TopicReadError) as exc:
        fail(str(exc))
        return
    click.echo(report.to_json(fail_above) if output_format == "json" else report.to_table(fail_above))
    sys.exit(0 if report.rate <= fail_above else 1)


def _parse_time(text: str) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            "not an ISO 8601 time, e.g. 2024-05-01T12:00:00Z", param_hint="--from-time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _decoder(settings: Settings) -> Decode:
    """Frame → writer schema → record: the reader of sanitized records the other commands use (in
    ``schemas_dir`` mode it derives the sanitized schemas as the worker does)."""
    from stream_anon.app import sanitized_reader
    from stream_anon.keys import KeysError
    from stream_anon.registry import RegistryError, RegistryUnavailable

    try:
        reader = sanitized_reader(settings)
    except (FileNotFoundError, ValueError, RegistryError, KeysError, ConfigError) as exc:
        raise AuditError(str(exc)) from None

    def decode(value: bytes | None) -> tuple[dict[str, Any], Any]:
        try:
            return reader.read_with_schema(value or b"")  # no value: undecodable, as an empty one
        except RegistryUnavailable as exc:
            raise AuditError(str(exc)) from None

    return decode


def _scanner(settings: Settings) -> TextScanner:
    try:
        from stream_anon.detection.scanner import Scanner
    except ImportError as exc:
        raise AuditError(f"NER is not available ({exc}); run with --no-ner") from None
    try:
        scanner: TextScanner = Scanner(settings.scan)
    except ValueError as exc:  # ScanError: the model is not installed, a bad setting
        raise AuditError(f"NER is not available: {exc}") from None
    return scanner
