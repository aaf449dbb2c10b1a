"""Helpers for tests that talk to the real local broker: topics, producing framed records, reading back."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from stream_anon.kafka.reader import read_to_end
from stream_anon.schema import strip_logical_types
from stream_anon.schemas import fingerprint
from stream_anon.wire import SINGLE_OBJECT_MAGIC, encode

BOOTSTRAP = os.environ.get("STREAM_ANON_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
REPO = Path(__file__).resolve().parent.parent


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create_topics(names: Iterable[str], partitions: int = 3, config: dict[str, str] | None = None) -> None:
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=partitions, replication_factor=1, config=config or {}) for n in names]
    )
    for f in futures.values():
        f.result(30)
    # metadata propagates asynchronously: wait until every topic is visible with its leaders
    deadline = time.monotonic() + 30
    names = list(names)
    while time.monotonic() < deadline:
        md = admin.list_topics(timeout=10)
        if all(n in md.topics and len(md.topics[n].partitions) == partitions for n in names):
            return
        time.sleep(0.2)
    raise TimeoutError(f"topics not visible: {names}")


def delete_topics(names: Iterable[str]) -> None:
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for f in admin.delete_topics(list(names)).values():
        with contextlib.suppress(KafkaException):
            f.result(30)


@dataclass(frozen=True)
class Framer:
    """Encodes records with a schema in single-object encoding (the schemas_dir mode)."""

    schema: dict[str, Any]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_parsed", fastavro.parse_schema(strip_logical_types(self.schema)))
        object.__setattr__(self, "_header", SINGLE_OBJECT_MAGIC + fingerprint(self.schema))

    @classmethod
    def from_file(cls, path: Path) -> Framer:
        return cls(json.loads(path.read_text()))

    def __call__(self, record: dict[str, Any]) -> bytes:
        return encode(self._header, self._parsed, record)  # type: ignore[attr-defined]


def produce(
    topic: str, values: Iterable[tuple[bytes | None, bytes | None]], partition: int | None = None
) -> int:
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 5, "enable.idempotence": True})
    n = 0
    for key, value in values:
        while True:
            try:
                if partition is None:
                    producer.produce(topic, value, key)
                else:
                    producer.produce(topic, value, key, partition=partition)
                break
            except BufferError:
                producer.poll(0.1)
        n += 1
    assert producer.flush(60) == 0
    return n


@dataclass(frozen=True)
class Read:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]


def read_all(
    topic: str, read_committed: bool = True, idle_s: float = 3.0, timeout_s: float = 120.0
) -> list[Read]:
    """Every record of a topic up to its end offsets (as seen with the chosen isolation level)."""
    return [
        Read(
            m.topic(),
            m.partition(),
            m.offset(),
            m.key(),
            m.value(),
            {k: v.decode() for k, v in m.headers() or []},
        )
        for m in read_to_end(
            {"bootstrap.servers": BOOTSTRAP},
            topic,
            read_committed=read_committed,
            idle_timeout_s=idle_s,
            timeout_s=timeout_s,
            purpose="test-reader",
        )
    ]


def worker_env(**settings: Any) -> dict[str, str]:
    env = dict(os.environ)
    env["STREAM_ANON_BOOTSTRAP_SERVERS"] = BOOTSTRAP
    for key, value in settings.items():
        env[f"STREAM_ANON_{key.upper()}"] = ",".join(value) if isinstance(value, list) else str(value)
    return env


def start_worker(env: dict[str, str], *args: str, log_path: Path | None = None) -> subprocess.Popen[bytes]:
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "stream_anon", "run", *args], env=env, stdout=out, stderr=subprocess.STDOUT
    )


def wait_for_offsets(topic: str, at_least: int, timeout_s: float = 120.0) -> None:
    """Until the topic's partitions hold ``at_least`` offsets (records and transaction markers): the
    high watermarks answer at once, where reading the records would wait for the worker to pause."""
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": unique("watch")})
    try:
        partitions = list(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ends = [
                consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions
            ]
            if sum(ends) >= at_least:
                return
            time.sleep(0.1)
    finally:
        consumer.close()
    raise TimeoutError(f"fewer than {at_least} records reached {topic}")
