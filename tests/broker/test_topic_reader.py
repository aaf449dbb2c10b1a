"""Reading a topic to its end (stream_anon/kafka/reader.py), against the real broker.

Transaction markers take offsets and are never delivered; a plain topic has none. The reader must
finish on both without waiting out its idle limit, and must not take a lone record for a marker.
"""

from __future__ import annotations

import time

from confluent_kafka import Producer
from kafkatools import BOOTSTRAP, create_topics, unique

from stream_anon.kafka.reader import read_to_end

KAFKA = {"bootstrap.servers": BOOTSTRAP}
IDLE_S = 20.0  # long, so that finishing early can only come from the positions


def offsets(topic: str) -> tuple[list[tuple[int, int]], float]:
    """(partition, offset) of every record read, and how long the read took."""
    started = time.monotonic()
    found = [(m.partition(), m.offset()) for m in read_to_end(KAFKA, topic, idle_timeout_s=IDLE_S)]
    return sorted(found), time.monotonic() - started


def transactional_producer() -> Producer:
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "transactional.id": unique("tx")})
    producer.init_transactions(30)
    return producer


def committed(producer: Producer, topic: str, values: list[bytes], partitions: int = 1) -> None:
    """One committed transaction of ``values``, spread over the topic's partitions in turn."""
    producer.begin_transaction()
    for i, value in enumerate(values):
        producer.produce(topic, value, partition=i % partitions)
    producer.commit_transaction(30)


def test_a_lone_record_in_one_partition_of_a_plain_topic_is_read() -> None:
    topic = unique("lone")
    create_topics([topic], partitions=3)
    producer = Producer({"bootstrap.servers": BOOTSTRAP})
    producer.produce(topic, b"only", partition=1)
    assert producer.flush(30) == 0
    found, took = offsets(topic)
    assert found == [(1, 0)]
    assert took < IDLE_S


def test_a_transactional_topic_is_read_past_its_commit_markers() -> None:
    topic = unique("txn")
    create_topics([topic], partitions=2)
    producer = transactional_producer()
    for batch in range(3):
        committed(producer, topic, [f"{batch}-{i}".encode() for i in range(5)], partitions=2)
    found, took = offsets(topic)
    assert len(found) == 15  # the 3 markers per partition took offsets, and nothing stands for them
    assert max(offset for _, offset in found) > 7
    assert took < IDLE_S


def test_records_of_an_open_transaction_are_not_waited_for() -> None:
    # read_committed end offsets are the last stable offsets: the read ends before the open transaction
    topic = unique("open")
    create_topics([topic], partitions=1)
    producer = transactional_producer()
    committed(producer, topic, [b"committed"])
    producer.begin_transaction()
    producer.produce(topic, b"still open", partition=0)
    assert producer.flush(30) == 0
    try:
        started = time.monotonic()
        stable = [m.value() for m in read_to_end(KAFKA, topic, idle_timeout_s=IDLE_S)]
        took = time.monotonic() - started
        uncommitted = [
            m.value() for m in read_to_end(KAFKA, topic, read_committed=False, idle_timeout_s=IDLE_S)
        ]
    finally:
        producer.abort_transaction(30)
    assert stable == [b"committed"]
    assert took < IDLE_S
    assert uncommitted == [b"committed", b"still open"]
