"""``stream-anon audit``: look for PII in a topic, report per field and entity, fail above a rate."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from stream_anon.audit import AuditError, Auditor, Decode, TopicReader, run_audit
from stream_anon.cli.run import fail, settings_from
from stream_anon.config import Settings
from stream_anon.detection import TextScanner


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
        with TopicReader(settings.librdkafka(), topic, from_time_ms=start_ms) as reader:
            decode = _decoder(settings)
            scanner = None if no_ner else _scanner(settings)
            auditor = Auditor(
                topic,
                scanner,
                entities=frozenset(settings.scan.entities),
                threshold=settings.scan.threshold,
                batch_size=settings.scan.batch_size,
                ignore_paths=frozenset(ignore_path),
            )
            from tqdm import tqdm

            total = min(reader.total, max_records) if max_records else reader.total
            with tqdm(total=total, unit="rec", desc=f"auditing {topic}", file=sys.stderr, leave=False) as bar:
                report = run_audit(reader, decode, auditor, max_records=max_records, progress=bar.update)
    except AuditError as exc:
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
    """Frame → writer schema → record.

    In ``schemas_dir`` mode a sanitized topic's schemas are the derived schemas of the directory's
    files: on the first fingerprint the directory does not know, they are compiled as the worker
    compiles them (same rules, same keys file) and added.
    """
    from stream_anon.registry import RegistryError, RegistryUnavailable
    from stream_anon.schemas import open_resolver
    from stream_anon.wire import WireError, WireErrorKind, decode_payload, parse_frame

    try:
        resolver = open_resolver(settings, check=True)
    except (FileNotFoundError, ValueError, RegistryError) as exc:
        raise AuditError(str(exc)) from None
    derived_added = resolver.directory is None

    def decode(value: bytes | None) -> tuple[dict[str, Any], Any]:
        nonlocal derived_added
        framing, ident, start = parse_frame(value)
        try:
            writer = resolver.lookup(framing, ident)
        except WireError as exc:
            if exc.kind is not WireErrorKind.UNKNOWN_SCHEMA or derived_added:
                raise
            derived_added = True
            _add_derived_schemas(settings, resolver.directory)
            writer = resolver.lookup(framing, ident)
        except RegistryUnavailable as exc:
            raise AuditError(str(exc)) from None
        assert value is not None  # parse_frame refuses empty values
        return decode_payload(value, start, writer.parsed, writer.ref), writer.parsed

    return decode


def _add_derived_schemas(settings: Settings, directory: Any) -> None:
    try:
        from stream_anon.app import plan_compiler

        compile_plan = plan_compiler(settings)
    except Exception:  # no rule engine or no keys: only the directory's own files are known
        return
    for writer in directory.schemas():
        try:
            directory.add(compile_plan(writer.schema).derived_schema)
        except Exception:  # a schema whose rules do not compile has no sanitized records to read
            continue


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
