"""``stream-anon dlq summary`` and ``stream-anon dlq replay``: the dead-letter topic's operations."""

from __future__ import annotations

import json
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from stream_anon.cli.run import fail, settings_from

CONFIG_OPTION = click.option(
    "--config",
    "config",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The worker's YAML configuration (broker, dlq_topic, input_topics, keys_file).",
)
FORMAT_OPTION = click.option(
    "--format", "output_format", type=click.Choice(["table", "json"]), default="table", show_default=True
)
_AGO = re.compile(r"^(\d+)([smhd])$")
_OFFSET = re.compile(r"^(\d+)?@(\d+)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(text: str, option: str) -> int:
    """Milliseconds since the epoch: ISO 8601 (UTC unless an offset is given) or a span ago (30m, 2h, 7d)."""
    ago = _AGO.match(text)
    if ago:
        return int((time.time() - int(ago.group(1)) * _UNIT_S[ago.group(2)]) * 1000)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            "expected an ISO 8601 time (2026-05-01T12:00:00Z) or a span ago (30m, 2h, 7d)", param_hint=option
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _progress(total: int, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="rec", desc=desc, file=sys.stderr, leave=False)


@click.group()
def dlq() -> None:
    """Dead-letter topic: see what failed and why, replay it once the cause is fixed."""


@dlq.command()
@CONFIG_OPTION
@click.option(
    "--since",
    metavar="TIME",
    help="Only dead letters written at or after TIME (ISO 8601, or 30m, 2h, 7d ago).",
)
@FORMAT_OPTION
def summary(config: Path, since: str | None, output_format: str) -> None:
    """Count dead letters by reason, schema and source partition, from their headers only.

    Reads the dead-letter topic (read_committed) up to its end offsets at start, with a progress bar on
    stderr. Never prints, decodes or opens a key or value. Records that are not readable dead letters are
    listed one line each. Exit status: 0, or 1 when some record is not a readable dead letter, 2 when the
    topic cannot be read.
    """
    from stream_anon.app import load_keys
    from stream_anon.dlq.summary import read_summary
    from stream_anon.kafka.reader import TopicReadError
    from stream_anon.keys import KeysError

    settings = settings_from(config)
    since_ms = parse_time(since, "--since") if since else None
    try:
        keys = load_keys(settings.keys_file) if settings.keys_file else None
    except KeysError as exc:
        fail(str(exc))
        return
    bar: Any = None

    def on_total(total: int) -> None:
        nonlocal bar
        bar = _progress(total, f"reading {settings.dlq_topic}")

    try:
        found = read_summary(settings, keys, since_ms, on_total=on_total, on_record=lambda: bar.update(1))
    except TopicReadError as exc:
        fail(str(exc))
        return
    finally:
        if bar is not None:
            bar.close()
    if output_format == "json":
        click.echo(json.dumps({"topic": settings.dlq_topic, **found.to_dict()}, indent=2))
    else:
        click.echo(_table(settings.dlq_topic, found.to_dict()))
    sys.exit(1 if found.problems else 0)


def _table(topic: str, s: dict[str, Any]) -> str:
    all_ = s["dead_letters"]
    lines = [
        f"{topic}: {all_['count']} dead letter(s)"
        + (f" since {s['since']}" if s["since"] else "")
        + (f", first {all_['first']}, last {all_['last']}" if all_["count"] else ""),
    ]

    def block(title: str, rows: list[tuple[str, ...]]) -> None:
        if not rows:
            return
        widths = [
            max(len(r[i]) for r in [(title, *[""] * (len(rows[0]) - 1)), *rows]) for i in range(len(rows[0]))
        ]
        lines.append("")
        header = (title, "count", "first", "last")[: len(rows[0])]
        lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
        for row in rows:
            lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())

    block(
        "reason",
        [(r, str(v["count"]), v["first"] or "-", v["last"] or "-") for r, v in s["by_reason"].items()],
    )
    block("schema", [(k, str(v)) for k, v in s["by_schema"].items()])
    block("source", [(k, str(v)) for k, v in s["by_source"].items()])
    block(
        "sealed with",
        [*((k, str(v)) for k, v in s["sealed"].items()), ("(not sealed)", str(s["not_sealed"]))],
    )
    if s["held_back"]:
        lines.append("")
        lines.append(f"held back (replayed {s['max_replays']} times already; replay leaves them):")
        lines.extend(f"  {reason}: {n}" for reason, n in s["held_back"].items())
    if s["problems"]:
        lines.append("")
        lines.append(f"not readable dead letters ({len(s['problems'])}):")
        lines.extend(f"  {p}" for p in s["problems"])
    return "\n".join(lines)


def _bound(text: str | None, option: str) -> Any:
    from stream_anon.dlq.replay import Bound

    if text is None:
        return None
    offset = _OFFSET.match(text)
    if offset:
        partition = None if offset.group(1) is None else int(offset.group(1))
        return Bound(offset=int(offset.group(2)), partition=partition)
    return Bound(time_ms=parse_time(text, option))


@dlq.command()
@CONFIG_OPTION
@click.option(
    "--reason", "reasons", multiple=True, metavar="R", help="Only dead letters with this reason (repeatable)."
)
@click.option(
    "--schema",
    metavar="S",
    help="Only dead letters of this writer schema (id:<n> or fp:<hex>, as summary shows).",
)
@click.option(
    "--since",
    metavar="TIME|[P]@OFFSET",
    help="Pass over dead letters before this time (ISO 8601, or 30m, 2h, 7d ago) or dead-letter offset "
    "(@OFFSET in every partition, P@OFFSET in partition P).",
)
@click.option(
    "--until",
    metavar="TIME|[P]@OFFSET",
    help="Stop after this time or offset (included); later dead letters stay for a later replay.",
)
@click.option(
    "--group", help="The replay's consumer group (and transactional id). Default: <group_id>-dlq-replay."
)
@click.option("--dry-run", is_flag=True, help="Print what would be replayed; write and commit nothing.")
@FORMAT_OPTION
def replay(
    config: Path,
    reasons: tuple[str, ...],
    schema: str | None,
    since: str | None,
    until: str | None,
    group: str | None,
    dry_run: bool,
    output_format: str,
) -> None:
    """Copy selected dead letters back to their source topic, exactly once, for the worker to process again.

    One transaction per batch with the replay group's offsets: a replay stopped at any point resumes after
    its last committed batch. Each record keeps its key, value (a tombstone stays a tombstone), source
    partition and timestamp, is unsealed if it was sealed, and carries stream-anon.replay.count; a dead
    letter replayed dlq_max_replays times already is held back. Exit status: 0; 1 when some records
    were skipped (each named with why); 2 when the replay cannot run or stopped (run it again to resume).
    """
    from stream_anon.app import load_keys
    from stream_anon.dlq.letter import Letter, Unreadable
    from stream_anon.dlq.replay import (
        Pass,
        Planner,
        ReplayFailed,
        Selection,
        Write,
        replay_group,
        source_partitions,
    )
    from stream_anon.dlq.replay import replay as run_replay
    from stream_anon.dlq.seal import DeadLetterSeal
    from stream_anon.kafka.errors import FatalKafkaError
    from stream_anon.kafka.reader import TopicReadError
    from stream_anon.keys import KeysError

    settings = settings_from(config)
    selection = Selection(frozenset(reasons), schema, _bound(since, "--since"), _bound(until, "--until"))
    try:
        keys = load_keys(settings.keys_file)
        planner = Planner(
            selection,
            DeadLetterSeal(keys),
            settings.dlq_max_replays,
            source_partitions(settings, settings.connect_timeout_s),
        )
    except (KeysError, FatalKafkaError) as exc:
        fail(str(exc))
        return
    bar: Any = None

    def on_total(total: int) -> None:
        nonlocal bar
        bar = _progress(total, f"{'checking' if dry_run else 'replaying'} {settings.dlq_topic}")

    def on_record(record: Letter | Unreadable, decided: Write | Pass | str) -> None:
        bar.update(1)
        if dry_run and isinstance(decided, Write) and isinstance(record, Letter) and output_format == "table":
            where = decided.topic + (f"[{decided.partition}]" if decided.partition is not None else "")
            bar.write(
                f"would replay partition {record.place.partition} offset {record.place.offset} "
                f"({record.reason}, {record.schema or 'no schema'}) to {where} "
                f"as replay {decided.replay_count}",
                file=sys.stdout,
            )

    try:
        report = run_replay(
            settings,
            planner,
            group=group or replay_group(settings),
            dry_run=dry_run,
            on_record=on_record,
            on_total=on_total,
        )
    except (ReplayFailed, FatalKafkaError, TopicReadError) as exc:
        fail(str(exc))
        return
    finally:
        if bar is not None:
            bar.close()
    result = report.to_dict()
    if output_format == "json":
        click.echo(json.dumps({"dry_run": dry_run, **result}, indent=2))
    else:
        verb = "would replay" if dry_run else "replayed"
        targets = ", ".join(f"{t}: {n}" for t, n in result["replayed"].items()) or "nothing"
        click.echo(f"{verb} {result['replayed_total']} of {result['scanned']} record(s) read ({targets})")
        click.echo(
            f"not selected: {result['not_selected']}, held back: {result['held_back']}, "
            f"skipped: {result['skipped']}"
        )
        for message in result["messages"]:
            click.echo(f"  {message}")
        if result["stopped_at_until"]:
            click.echo(f"stopped at --until in partition(s) {result['stopped_at_until']}")
    if not report.complete:
        fail("the dead-letter topic was not read to its end (no progress); run the replay again to resume")
    sys.exit(1 if result["skipped"] else 0)
