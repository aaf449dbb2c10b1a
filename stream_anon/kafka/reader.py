"""The one bounded topic reader: a topic from a start to the end offsets it has when the reader opens.

Used by the audit, the risk report, the aggregate job's ledger check, the demo, the benchmark and the
tests. A partition is done when a record at or past its end offset arrives or when the consumer's
position reaches the end offset. Transaction markers and aborted records take offsets but are never
delivered, and librdkafka moves the position past them, so the position is what says a partition is
done; the last delivered offset is not (on a transactional topic it stops one short of the end, on a
plain one it does not). A ``read_committed`` reader's end offsets are the last stable offsets, so
records of a transaction still open are not waited for. ``idle_timeout_s`` without progress ends a read
that cannot finish (a partition without a leader, a stable offset held back); the reader then says it
is not ``complete``. Commits nothing (a throwaway group id); with ``group_id``, a reader starts where that
group's committed offsets are, for a caller that commits them in its transactions (``dlq replay``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from stream_anon.kafka.clients import reader_config


class TopicReadError(OSError):
    """The topic cannot be read: the broker is unreachable, the topic is missing, a consumer error."""


class TopicReader:
    """The records of ``topic`` from the beginning (or the first at or after ``from_time_ms``) to the
    end offsets captured when the reader opens, partition by partition as fetched.

    ``kafka`` is the client configuration (``Settings.librdkafka()`` or a bare ``bootstrap.servers``);
    ``purpose`` names the throwaway consumer group. ``timeout_s`` bounds the whole read.
    """

    def __init__(
        self,
        kafka: Mapping[str, Any],
        topic: str,
        *,
        purpose: str = "reader",
        from_time_ms: int | None = None,
        read_committed: bool = True,
        group_id: str | None = None,
        idle_timeout_s: float = 30.0,
        timeout_s: float | None = None,
        metadata_timeout_s: float = 15.0,
    ) -> None:
        self.topic = topic
        self.idle_timeout_s = idle_timeout_s
        self.timeout_s = timeout_s
        # False when the read stopped at a limit before every partition reached its end offset.
        self.complete = True
        try:
            config = reader_config(kafka, purpose, read_committed=read_committed)
            if group_id is not None:
                config["group.id"] = group_id
            self._consumer = Consumer(config)
        except KafkaException as exc:
            raise TopicReadError(f"cannot create a Kafka consumer: {exc.args[0]}") from None
        try:
            self.start, self.end = self._offsets(from_time_ms, metadata_timeout_s)
            if group_id is not None:
                self._start_at_committed(metadata_timeout_s)
        except BaseException:
            self._consumer.close()
            raise

    def _offsets(self, from_time_ms: int | None, timeout_s: float) -> tuple[dict[int, int], dict[int, int]]:
        try:
            metadata = self._consumer.list_topics(self.topic, timeout=timeout_s)
        except KafkaException as exc:
            raise TopicReadError(f"cannot reach the broker to read {self.topic}: {exc.args[0]}") from None
        described = metadata.topics.get(self.topic)
        if described is None or described.error is not None or not described.partitions:
            raise TopicReadError(f"topic {self.topic} does not exist or has no partitions")
        start: dict[int, int] = {}
        end: dict[int, int] = {}
        try:
            for partition in sorted(described.partitions):
                low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(self.topic, partition), timeout=timeout_s
                )
                start[partition], end[partition] = low, high
            if from_time_ms is not None:
                wanted = [TopicPartition(self.topic, p, from_time_ms) for p in start]
                for found in self._consumer.offsets_for_times(wanted, timeout=timeout_s):
                    # -1: no record at or after that time in this partition
                    start[found.partition] = end[found.partition] if found.offset < 0 else found.offset
        except KafkaException as exc:
            raise TopicReadError(f"cannot read the offsets of {self.topic}: {exc.args[0]}") from None
        return start, end

    def _start_at_committed(self, timeout_s: float) -> None:
        try:
            committed = self._consumer.committed(
                [TopicPartition(self.topic, p) for p in self.start], timeout=timeout_s
            )
        except KafkaException as exc:
            raise TopicReadError(
                f"cannot read the committed offsets of {self.topic}: {exc.args[0]}"
            ) from None
        for found in committed:
            if found.offset >= 0:  # negative: the group has committed nothing for this partition
                self.start[found.partition] = max(self.start[found.partition], found.offset)

    def group_metadata(self) -> Any:
        """The consumer group's metadata, for committing offsets inside a transaction."""
        return self._consumer.consumer_group_metadata()

    @property
    def total(self) -> int:
        """Offsets to read; an upper bound of the records (markers and aborted records take offsets too)."""
        return sum(max(0, self.end[p] - self.start[p]) for p in self.start)

    def __iter__(self) -> Iterator[Message]:
        remaining = {p for p in self.start if self.start[p] < self.end[p]}
        if not remaining:
            return
        consumer = self._consumer
        consumer.assign([TopicPartition(self.topic, p, self.start[p]) for p in remaining])
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        last_progress = time.monotonic()
        while remaining:
            messages = consumer.consume(500, 0.5)
            for message in messages:
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise TopicReadError(f"reading {self.topic} failed: {error.str()}")
                partition, offset = message.partition(), message.offset()
                if partition not in remaining or offset is None:
                    continue
                if offset >= self.end[partition]:
                    self._finish(partition, remaining)
                    continue
                yield message
                if offset >= self.end[partition] - 1:
                    self._finish(partition, remaining)
            now = time.monotonic()
            if messages:
                last_progress = now
            # The fetch position moves past markers and aborted records without delivering anything.
            if remaining:
                for position in consumer.position([TopicPartition(self.topic, p) for p in remaining]):
                    if position.offset >= self.end[position.partition]:
                        self._finish(position.partition, remaining)
            if remaining and (now - last_progress > self.idle_timeout_s or (deadline and now > deadline)):
                self.complete = False
                return

    def _finish(self, partition: int, remaining: set[int]) -> None:
        remaining.discard(partition)
        self._consumer.pause([TopicPartition(self.topic, partition)])

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> TopicReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_to_end(kafka: Mapping[str, Any], topic: str, **options: Any) -> Iterator[Message]:
    """Every record of ``topic`` up to its end offsets at the start (``TopicReader``'s options), the
    consumer closed when the iteration ends."""
    with TopicReader(kafka, topic, **options) as reader:
        yield from reader
