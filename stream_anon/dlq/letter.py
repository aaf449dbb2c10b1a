"""One dead letter as read back from the dead-letter topic: its place there, and what its headers say.

Only headers are interpreted; key and value are carried as bytes and never decoded here. A record the
summary or the replay cannot use becomes an ``Unreadable`` with a sentence saying why (no stream-anon
headers, a header a newer version wrote, a malformed number), so nothing is skipped silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from confluent_kafka import Message

from stream_anon import __version__
from stream_anon.records import (
    HEADER_PREFIX,
    REPLAY_COUNT_HEADER,
    SEAL_HEADER,
    SEAL_KEY_HEADER,
    SEAL_VERSION_HEADER,
)

REASON = HEADER_PREFIX + "reason"
SCHEMA = HEADER_PREFIX + "schema"
SOURCE_TOPIC = HEADER_PREFIX + "source.topic"
SOURCE_PARTITION = HEADER_PREFIX + "source.partition"
SOURCE_OFFSET = HEADER_PREFIX + "source.offset"
SOURCE_TIMESTAMP = HEADER_PREFIX + "source.timestamp"
VERSION = HEADER_PREFIX + "version"


@dataclass(frozen=True, slots=True)
class Place:
    """Where a dead letter sits in the dead-letter topic, and its timestamp there (ms)."""

    partition: int
    offset: int
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class Seal:
    """Which key version sealed a dead letter's key and value."""

    scheme: str
    key_name: str
    version: int


@dataclass(frozen=True, slots=True)
class Letter:
    """A dead letter whose headers this version understands."""

    place: Place
    key: bytes | None
    value: bytes | None
    reason: str
    schema: str | None
    source_topic: str
    source_partition: int
    source_offset: int
    source_timestamp_ms: int
    replays: int
    seal: Seal | None


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A record of the dead-letter topic that cannot be summarized or replayed, and why."""

    place: Place
    problem: str


def version_tuple(text: str) -> tuple[int, ...]:
    """``"1.2.3rc1"`` -> ``(1, 2, 3)``: enough to tell whether a header was written by a newer version."""
    return tuple(int(part) for part in re.findall(r"\d+", text.split("+")[0])[:3])


def read_letter(message: Message) -> Letter | Unreadable:
    partition, offset = message.partition(), message.offset()
    _, timestamp = message.timestamp()
    place = Place(partition if partition is not None else -1, offset if offset is not None else -1, timestamp)
    headers: dict[str, str] = {}
    found = message.headers()
    for name, raw in found if isinstance(found, list) else []:
        if name.startswith(HEADER_PREFIX) and isinstance(raw, bytes):
            headers[name] = raw.decode("utf-8", errors="replace")
    return parse_headers(place, headers, message.key(), message.value())


def parse_headers(
    place: Place, headers: dict[str, str], key: bytes | None, value: bytes | None
) -> Letter | Unreadable:
    """The dead letter the headers describe, or why they describe none this version can use."""
    if REASON not in headers or SOURCE_TOPIC not in headers:
        return Unreadable(place, "no stream-anon dead-letter headers (not written by stream-anon)")
    written_by = headers.get(VERSION, "")
    if version_tuple(written_by) > version_tuple(__version__):
        return Unreadable(
            place, f"written by stream-anon {written_by}, newer than this {__version__}: upgrade to read it"
        )
    try:
        numbers = {
            name: int(headers.get(name, default))
            for name, default in (
                (SOURCE_PARTITION, ""),
                (SOURCE_OFFSET, ""),
                (SOURCE_TIMESTAMP, "-1"),
                (REPLAY_COUNT_HEADER, "0"),
            )
        }
    except ValueError:
        return Unreadable(place, "a source partition, offset, timestamp or replay count is not a number")
    seal: Seal | None = None
    if SEAL_HEADER in headers:
        try:
            seal = Seal(headers[SEAL_HEADER], headers[SEAL_KEY_HEADER], int(headers[SEAL_VERSION_HEADER]))
        except (KeyError, ValueError):
            return Unreadable(place, "sealed, but the seal's key name or version header is missing or bad")
    return Letter(
        place=place,
        key=key,
        value=value,
        reason=headers[REASON],
        schema=headers.get(SCHEMA),
        source_topic=headers[SOURCE_TOPIC],
        source_partition=numbers[SOURCE_PARTITION],
        source_offset=numbers[SOURCE_OFFSET],
        source_timestamp_ms=numbers[SOURCE_TIMESTAMP],
        replays=numbers[REPLAY_COUNT_HEADER],
        seal=seal,
    )
