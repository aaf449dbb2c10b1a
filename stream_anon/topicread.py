"""Reading a whole topic, as far as it reaches when reading starts: the demo, the benchmark and the tests.

A partition is read when the consumer's position reaches the end offset taken at the start. Transaction
markers and aborted records take offsets but are never delivered, and librdkafka moves the position past
them, so the position is what says a partition is done; the last delivered offset is not (on a
transactional topic it stops one short of the end, on a plain one it does not). A ``read_committed``
reader's end offsets are the last stable offsets, so records of a transaction still open are not waited
for. ``idle_s`` without a record ends a read that makes no progress (a partition without a leader, say).
(The audit and the risk report read bounded windows with their own rules: ``audit.py``, ``risk.py``.)
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

from confluent_kafka import Consumer, Message, TopicPartition


def read_to_end(
    bootstrap: str,
    topic: str,
    *,
    read_committed: bool = True,
    idle_s: float = 5.0,
    timeout_s: float = 120.0,
    group_prefix: str = "stream-anon-reader",
) -> Iterator[Message]:
    """Every record of ``topic`` from its beginning to the end offsets it has now, partition by partition
    as fetched. Commits nothing (a throwaway group id); raises ``KafkaException`` if the topic cannot be read.
    """
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "group.id": f"{group_prefix}-{uuid.uuid4().hex[:12]}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed" if read_committed else "read_uncommitted",
    }
    consumer = Consumer(config)
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        unread: list[TopicPartition] = []
        ends: dict[int, int] = {}
        for p in partitions:
            low, ends[p] = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if ends[p] > low:
                unread.append(TopicPartition(topic, p))
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        deadline = time.monotonic() + timeout_s
        last = time.monotonic()
        while unread and time.monotonic() < deadline and time.monotonic() - last <= idle_s:
            messages = consumer.consume(500, 0.5)
            for message in messages:
                if message.error() is None:
                    yield message
            if messages:
                last = time.monotonic()
            unread = [tp for tp in consumer.position(unread) if tp.offset < ends[tp.partition]]
    finally:
        consumer.close()
