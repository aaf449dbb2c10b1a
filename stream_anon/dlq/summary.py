"""``stream-anon dlq summary``: what failed and why, from the dead letters' headers alone.

Counts by reason, writer schema, and source topic and partition, with the first and last dead-letter
times; which key versions sealed how many records (and how many no key version of the keys file opens);
how many records reached the replay cap and are held back; and, one line each, the records that are not
readable dead letters. Keys and values are never decoded, opened or printed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from stream_anon.config import Settings
from stream_anon.dlq.letter import Letter, Unreadable, read_letter
from stream_anon.kafka.reader import TopicReader
from stream_anon.keys import Keys


def iso(ms: int | None) -> str | None:
    if ms is None or ms < 0:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class Span:
    """How many dead letters, and the first and last of their dead-letter timestamps (ms)."""

    count: int = 0
    first_ms: int | None = None
    last_ms: int | None = None

    def add(self, ms: int) -> None:
        self.count += 1
        if ms >= 0:
            self.first_ms = ms if self.first_ms is None else min(self.first_ms, ms)
            self.last_ms = ms if self.last_ms is None else max(self.last_ms, ms)

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "first": iso(self.first_ms), "last": iso(self.last_ms)}


@dataclass(slots=True)
class Summary:
    """Dead letters counted by what their headers say; ``add`` one record at a time."""

    max_replays: int
    keys: Keys | None = None
    """With the keys file, sealed records no key version of it opens are listed as problems."""
    since_ms: int | None = None
    all: Span = field(default_factory=Span)
    by_reason: dict[str, Span] = field(default_factory=dict)
    by_schema: Counter[str] = field(default_factory=Counter)
    by_source: Counter[str] = field(default_factory=Counter)
    sealed: Counter[str] = field(default_factory=Counter)
    unsealed: int = 0
    held_back: Counter[str] = field(default_factory=Counter)
    """Dead letters replayed ``max_replays`` times already, by reason: replay leaves them alone."""
    problems: list[str] = field(default_factory=list)

    def add(self, record: Letter | Unreadable) -> None:
        where = f"partition {record.place.partition} offset {record.place.offset}"
        if isinstance(record, Unreadable):
            self.problems.append(f"{where}: {record.problem}")
            return
        self.all.add(record.place.timestamp_ms)
        self.by_reason.setdefault(record.reason, Span()).add(record.place.timestamp_ms)
        self.by_schema[record.schema or "(none)"] += 1
        self.by_source[f"{record.source_topic}[{record.source_partition}]"] += 1
        if record.replays >= self.max_replays:
            self.held_back[record.reason] += 1
        if record.seal is None:
            self.unsealed += 1
            return
        self.sealed[f"{record.seal.key_name} v{record.seal.version}"] += 1
        if self.keys is not None and not _opens(self.keys, record.seal.key_name, record.seal.version):
            self.problems.append(
                f"{where}: sealed under key {record.seal.key_name!r} version {record.seal.version}, "
                "which the keys file does not hold: it cannot be replayed"
            )

    def add_all(self, records: Iterable[Letter | Unreadable]) -> Summary:
        for record in records:
            self.add(record)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": iso(self.since_ms),
            "dead_letters": self.all.to_dict(),
            "by_reason": {r: s.to_dict() for r, s in sorted(self.by_reason.items())},
            "by_schema": dict(self.by_schema.most_common()),
            "by_source": dict(sorted(self.by_source.items())),
            "sealed": dict(sorted(self.sealed.items())),
            "not_sealed": self.unsealed,
            "max_replays": self.max_replays,
            "held_back": dict(sorted(self.held_back.items())),
            "problems": self.problems,
        }


def _opens(keys: Keys, name: str, version: int) -> bool:
    try:
        keys.secret(name, version)
    except KeyError:
        return False
    return True


def read_summary(
    settings: Settings,
    keys: Keys | None,
    since_ms: int | None = None,
    *,
    on_total: Callable[[int], None] | None = None,
    on_record: Callable[[], None] | None = None,
) -> Summary:
    """The summary of the dead-letter topic (read_committed, to the end offsets it has now)."""
    found = Summary(settings.dlq_max_replays, keys, since_ms)
    with TopicReader(
        settings.librdkafka(), settings.dlq_topic, purpose="dlq-summary", from_time_ms=since_ms
    ) as reader:
        if on_total is not None:
            on_total(reader.total)
        for message in reader:
            found.add(read_letter(message))
            if on_record is not None:
                on_record()
        if not reader.complete:
            found.problems.append("the topic was not read to its end: no progress (see the broker's state)")
    return found
