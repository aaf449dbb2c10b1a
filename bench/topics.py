"""Kafka plumbing of the harness: topics, bulk loading, reading a sanitized topic back."""

from __future__ import annotations

import contextlib
import io
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import fastavro
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from bench.data import HEADER_BYTES
from stream_anon.kafka.reader import read_to_end
from stream_anon.schema import strip_logical_types

LINEAGE_PARTITION = "stream-anon.source.partition"
LINEAGE_OFFSET = "stream-anon.source.offset"


def run_id() -> str:
    return uuid.uuid4().hex[:8]


class Topics:
    """Creates topics for one run and deletes them all at the end."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        self.created: list[str] = []

    def name(self, what: str) -> str:
        return f"{self.prefix}.{what}"

    def create(self, what: Iterable[str], partitions: int = 1) -> list[str]:
        names = [self.name(w) for w in what]
        futures = self.admin.create_topics(
            [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names]
        )
        for future in futures.values():
            future.result(30)
        self.created.extend(names)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            md = self.admin.list_topics(timeout=10)
            if all(n in md.topics and len(md.topics[n].partitions) == partitions for n in names):
                return names
            time.sleep(0.2)
        raise TimeoutError(f"topics not visible: {names}")

    def delete_all(self) -> None:
        if not self.created:
            return
        for future in self.admin.delete_topics(self.created).values():
            with contextlib.suppress(KafkaException):
                future.result(30)
        self.created = []


def broker_answers(bootstrap: str, timeout_s: float = 5.0) -> bool:
    try:
        AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=timeout_s)
    except KafkaException:
        return False
    return True


def load(bootstrap: str, topic: str, keys: Sequence[bytes], values: Sequence[bytes]) -> list[tuple[int, int]]:
    """Produce every record in order; returns each record's (partition, offset)."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 500_000,
        }
    )
    where: list[tuple[int, int]] = [(-1, -1)] * len(values)

    def delivered(index: int) -> Any:
        def on_delivery(err: Any, msg: Any) -> None:
            if err is None:
                where[index] = (msg.partition(), msg.offset())

        return on_delivery

    for i, (key, value) in enumerate(zip(keys, values, strict=True)):
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=delivered(i))
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(120) != 0:
        raise RuntimeError(f"could not load {topic}")
    missing = sum(1 for p, _ in where if p < 0)
    if missing:
        raise RuntimeError(f"{missing} records not acknowledged while loading {topic}")
    return where


@dataclass(frozen=True, slots=True)
class OutputRecord:
    source_partition: int
    source_offset: int
    value: bytes


def lineage(headers: dict[str, Any] | list[tuple[str, Any]] | None) -> dict[str, bytes]:
    """A record's headers as bytes by name (lineage headers are ASCII digits)."""
    found: dict[str, bytes] = {}
    pairs = headers.items() if isinstance(headers, dict) else headers or []
    for name, value in pairs:
        if isinstance(value, bytes):
            found[name] = value
        elif isinstance(value, str):
            found[name] = value.encode()
    return found


def read_output(
    bootstrap: str, topic: str, idle_s: float = 3.0, timeout_s: float = 180.0
) -> list[OutputRecord]:
    """Every committed record of ``topic``, with its lineage (source partition and offset)."""
    out: list[OutputRecord] = []
    for m in read_to_end(
        {"bootstrap.servers": bootstrap},
        topic,
        idle_timeout_s=idle_s,
        timeout_s=timeout_s,
        purpose="bench-reader",
    ):
        headers = lineage(m.headers())
        out.append(
            OutputRecord(
                int(headers.get(LINEAGE_PARTITION, b"-1")),
                int(headers.get(LINEAGE_OFFSET, b"-1")),
                m.value() or b"",
            )
        )
    return out


def comments_of(
    records: Iterable[OutputRecord], schema: dict[str, Any], where: dict[tuple[int, int], int]
) -> dict[int, str | None]:
    """Record index -> the output's ``comment``, decoding each value with the schema it was written with."""
    parsed = fastavro.parse_schema(strip_logical_types(schema))
    found: dict[int, str | None] = {}
    for rec in records:
        index = where.get((rec.source_partition, rec.source_offset))
        if index is None:
            continue
        body = io.BytesIO(rec.value)
        body.seek(HEADER_BYTES)
        record = fastavro.schemaless_reader(body, parsed, None)
        assert isinstance(record, dict)
        found[index] = record.get("comment")
    return found
