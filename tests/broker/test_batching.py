"""How the worker's consumer cuts batches, against the real broker.

A batch takes what has arrived and never waits for ``batch_size`` records; ``batch_linger_s`` lets a
short batch wait a bounded time for more. (Bounds here are generous on purpose: they tell waiting for
the timeout from not waiting, not how fast anything is.)
"""

from __future__ import annotations

import threading
import time

from kafkatools import REPO, create_topics, produce, unique

from stream_anon.config import Settings
from stream_anon.kafka.protocols import NullObserver
from stream_anon.kafka.source import KafkaSource


def source_on(topic: str) -> KafkaSource:
    settings = Settings(input_topics=[topic], group_id=unique("g"), schemas_dir=REPO / "schemas")
    return KafkaSource(settings, NullObserver(), lambda partitions: None)


def wait_for_assignment(source: KafkaSource) -> None:
    deadline = time.monotonic() + 60
    while not source.assigned and time.monotonic() < deadline:
        assert not source.poll_batch(500, 0.2).records, "nothing was produced yet"
    assert source.assigned, "no partition was assigned within a minute"


def test_a_short_batch_does_not_wait_for_a_full_one() -> None:
    topic = unique("batches")
    create_topics([topic], partitions=1)
    source = source_on(topic)
    try:
        wait_for_assignment(source)
        produce(topic, [(None, f"r{i}".encode()) for i in range(5)])
        started = time.monotonic()
        got = []
        while len(got) < 5 and time.monotonic() - started < 30:
            got += source.poll_batch(500, 30.0).records
        elapsed = time.monotonic() - started
        assert [r.value for r in got] == [f"r{i}".encode() for i in range(5)]
        assert elapsed < 15, "the batch waited out its 30 s timeout instead of taking what was there"
    finally:
        source.close()


def test_a_lingering_batch_collects_records_that_arrive_while_it_waits() -> None:
    topic = unique("linger")
    create_topics([topic], partitions=1)
    source = source_on(topic)
    try:
        wait_for_assignment(source)
        produce(topic, [(None, b"first")])
        first = source.poll_batch(500, 30.0, linger_s=0.0)
        assert [r.value for r in first.records] == [b"first"]
        produce(topic, [(None, b"a")])
        # the batch has its first record; the second arrives while it lingers
        later = threading.Timer(1.0, lambda: produce(topic, [(None, b"b")]))
        later.start()
        batch = source.poll_batch(500, 30.0, linger_s=5.0)
        later.join()
        values = [r.value for r in batch.records]
        assert values[:1] == [b"a"] and b"b" in values, values
        assert batch.end == {(topic, 0): 3}
    finally:
        source.close()
