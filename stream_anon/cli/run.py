"""``stream-anon run`` (the Kafka worker) and ``stream-anon anonymize`` (the same engine on JSON Lines)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import click
import fastavro.validation

from stream_anon.config import ConfigError, Settings, load_settings


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def settings_from(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        fail(str(exc))
        raise  # unreachable; keeps type checkers honest


@click.command()
@click.option(
    "--config",
    "config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML configuration file; every key can be overridden by STREAM_ANON_<KEY>.",
)
@click.option(
    "--until-idle",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Stop (exit 0) after this many seconds without input, e.g. to drain a topic in a batch job.",
)
def run(config: Path | None, until_idle: float | None) -> None:
    """Run the worker: consume raw topics, publish sanitized and dead-letter records.

    Stops cleanly on SIGTERM or SIGINT: the batch in flight is finished or aborted, offsets are
    committed, and the process exits 0. A configuration or connectivity error exits 2 with a message.
    """
    from stream_anon.service import serve

    settings = settings_from(config)
    sys.exit(serve(settings, until_idle_s=until_idle))


def _json_lines(stream: IO[str]) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(stream, start=1):
        if line.strip():
            yield number, line


@click.command()
@click.option(
    "--schema",
    "schema_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The annotated Avro writer schema (.avsc) of the input records.",
)
@click.option(
    "--keys",
    "keys_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Keys file for hmac, tokenize and date_shift rules.",
)
@click.option(
    "--tag-policy",
    "policy_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML mapping of Confluent data-contract tags to operations.",
)
@click.option(
    "--input",
    "input_file",
    type=click.File("r", encoding="utf-8"),
    default="-",
    show_default=True,
    help="JSON Lines input, one plain JSON object per record.",
)
@click.option(
    "--output",
    "output_file",
    type=click.File("w", encoding="utf-8"),
    default="-",
    show_default=True,
    help="JSON Lines of sanitized records.",
)
@click.option(
    "--dlq",
    "dlq_file",
    type=click.File("w", encoding="utf-8"),
    default=None,
    help="JSON Lines of records that failed, with their reason. Without it they are only counted.",
)
@click.option(
    "--on-leak", type=click.Choice(["dead_letter", "redact"]), default="dead_letter", show_default=True
)
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=256, show_default=True)
def anonymize(
    schema_path: Path,
    keys_path: Path | None,
    policy_path: Path | None,
    input_file: IO[str],
    output_file: IO[str],
    dlq_file: IO[str] | None,
    on_leak: str,
    batch_size: int,
) -> None:
    """Anonymize JSON Lines with the rules of an annotated schema (backfills, dry runs, tests).

    Each input line is one record as a plain JSON object (a union value written as the bare value or
    null; bytes, fixed, decimal and duration values as strings of their bytes, U+0000-U+00FF, as in
    Avro's JSON encoding: docs/annotations.md). Sanitized records go to --output; records that fail go
    to --dlq with their reason, never to the output. Exits 1 if any record failed, 2 if the schema or
    its rules are unusable.
    """
    from stream_anon.app import file_plan
    from stream_anon.detection import ScannerUnavailable
    from stream_anon.pipeline import Rejected, rejection_for, sanitize_batch
    from stream_anon.rules import SchemaRulesError
    from stream_anon.schema import resolve
    from stream_anon.schema.jsonform import from_json, to_json
    from stream_anon.verify import Verifier
    from stream_anon.wire import WireError

    try:
        writer, plan = file_plan(schema_path, keys_path, policy_path)
    except WireError as exc:
        fail(f"{schema_path}: {exc}")
        return
    except SchemaRulesError as exc:
        rejected = rejection_for(exc)
        for problem in exc.problems:
            click.echo(f"{schema_path}: {problem.path}: {problem.code}: {problem.message}", err=True)
        fail(f"{schema_path}: rules do not compile ({rejected.reason.value})")
        return
    except (ConfigError, ValueError, OSError) as exc:
        fail(str(exc))
        return

    verifier = Verifier(on_leak=on_leak)  # type: ignore[arg-type]
    writer_node = resolve(writer.parsed)
    counts = {"read": 0, "sanitized": 0, "failed": 0}

    def reject(number: int, original: Any, reason: str, error_class: str, message: str) -> None:
        counts["failed"] += 1
        if dlq_file is not None:
            entry = {
                "line": number,
                "reason": reason,
                "error_class": error_class,
                "message": message,
                "record": original,
            }
            dlq_file.write(json.dumps(entry, ensure_ascii=False, default=to_json) + "\n")

    def flush(pending: list[tuple[int, dict[str, Any]]]) -> None:
        try:
            results = sanitize_batch(plan, verifier, [record for _, record in pending])
        except ScannerUnavailable as exc:  # no record's fault: stop rather than fail every record
            progress.close()
            fail(str(exc))
        for (number, record), result in zip(pending, results, strict=True):
            if isinstance(result, Rejected):
                reject(number, record, result.reason.value, result.error_class, result.message)
            else:
                counts["sanitized"] += 1
                output_file.write(json.dumps(result, ensure_ascii=False, default=to_json) + "\n")

    pending: list[tuple[int, dict[str, Any]]] = []
    progress = _progress()
    for number, line in _json_lines(input_file):
        counts["read"] += 1
        progress.update(1)
        try:
            record = from_json(writer_node, json.loads(line))
        except json.JSONDecodeError as exc:
            reject(
                number, line.rstrip("\n"), "undecodable", "JSONDecodeError", f"line is not JSON: {exc.msg}"
            )
            continue
        if not isinstance(record, dict) or not fastavro.validation.validate(
            record, writer.parsed, raise_errors=False
        ):
            reject(
                number, record, "undecodable", "ValidationError", "record does not match the writer schema"
            )
            continue
        pending.append((number, record))
        if len(pending) >= batch_size:
            flush(pending)
            pending = []
    if pending:
        flush(pending)
    progress.close()
    click.echo(
        f"{counts['read']} record(s): {counts['sanitized']} sanitized, {counts['failed']} failed", err=True
    )
    sys.exit(1 if counts["failed"] else 0)


def _progress() -> Any:
    from tqdm import tqdm

    # Only on a terminal: in pipes and CI the summary line is enough.
    return tqdm(unit="rec", file=sys.stderr, disable=not sys.stderr.isatty(), desc="anonymize")
