"""An in-memory stand-in for the broker, for unit tests of the worker's loop and commit strategies.

``InMemoryBroker`` holds topics as lists of records per partition and the group's committed offsets.
``FakeSource`` is the loop's ``BatchSource`` over it; ``FakeProducer`` the ``ProducerClient`` the
commit strategies write through, with transactions (writes and offsets become visible together on
commit, nothing on abort) and injectable failures: a refusal of chosen writes, which like a real
broker's fails every write of the same produce request (here: to the same topic in the same flush),
and errors raised by ``commit_transaction``. Kafka semantics themselves are tested against the real
broker (tests/broker, tests/faults); this fake only lets the loop's arithmetic run without one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from stream_anon.kafka.batch import Batch
from stream_anon.records import InputRecord

TopicPartitionKey = tuple[str, int]


@dataclass(frozen=True)
class Written:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]


@dataclass
class InMemoryBroker:
    inputs: dict[TopicPartitionKey, list[InputRecord]] = field(default_factory=dict)
    topics: dict[str, list[Written]] = field(default_factory=dict)
    committed: dict[TopicPartitionKey, int] = field(default_factory=dict)

    def append(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> InputRecord:
        log = self.inputs.setdefault((topic, partition), [])
        record = InputRecord(topic, partition, len(log), 1_700_000_000_000, key, value)
        log.append(record)
        return record

    def written(self, topic: str) -> list[Written]:
        return self.topics.get(topic, [])


class FakeSource:
    """Reads the broker's input partitions in turn; offsets live in ``positions`` until committed."""

    def __init__(self, broker: InMemoryBroker) -> None:
        self.broker = broker
        self.assigned: set[TopicPartitionKey] = set(broker.inputs)
        self.fatal: KafkaError | None = None
        self.positions = {tp: broker.committed.get(tp, 0) for tp in self.assigned}
        self.closed = False
        self.rewinds: list[dict[TopicPartitionKey, int]] = []

    def poll_batch(self, max_records: int, timeout_s: float, linger_s: float = 0.0) -> Batch:
        batch = Batch([])
        for tp in sorted(self.assigned):
            log = self.broker.inputs[tp]
            while self.positions[tp] < len(log) and len(batch.records) < max_records:
                record = log[self.positions[tp]]
                batch.start.setdefault(tp, record.offset)
                batch.end[tp] = record.offset + 1
                batch.records.append(record)
                self.positions[tp] += 1
        return batch

    def rewind(self, batch: Batch) -> None:
        self.rewinds.append(dict(batch.start))
        for tp, offset in batch.start.items():
            if tp in self.assigned:
                self.positions[tp] = offset

    def commit(self, offsets: Mapping[TopicPartitionKey, int]) -> None:
        self.broker.committed.update(offsets)

    def group_metadata(self) -> Any:
        return "fake-group"

    def close(self) -> None:
        self.closed = True


Refusal = Callable[[str, bytes | None], KafkaError | None]


class FakeProducer:
    """Writes into the broker on flush (idempotent) or on commit (transactional)."""

    def __init__(self, broker: InMemoryBroker, refuse: Refusal | None = None) -> None:
        self.broker = broker
        self.refuse: Refusal = refuse or (lambda topic, value: None)
        self.commit_errors: list[KafkaError] = []  # raised by the next commit_transaction calls, in order
        self.offsets_errors: list[KafkaError] = []  # raised by the next send_offsets_to_transaction calls
        self.produce_errors: list[KafkaError] = []  # raised by the next produce calls, in order
        self.fatal: KafkaError | None = None  # as librdkafka: after a fatal error, every call fails with it
        self.queued: list[tuple[Written, Callable[[KafkaError | None, Message], None] | None]] = []
        self.pending: list[Written] | None = None  # the open transaction's writes
        self.pending_offsets: dict[TopicPartitionKey, int] = {}
        self.calls: list[str] = []

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        on_delivery: Callable[[KafkaError | None, Message], None] | None = None,
        headers: list[tuple[str, str | bytes | None]] | None = None,
    ) -> None:
        if self.produce_errors:
            err = self.produce_errors.pop(0)
            if err.fatal():
                self.fatal = err
            raise KafkaException(err)
        named = {name: v if isinstance(v, bytes) else str(v).encode() for name, v in headers or []}
        self.queued.append((Written(topic, key, value, named), on_delivery))

    def poll(self, timeout: float = -1) -> int:
        return 0

    def flush(self, timeout: float = -1) -> int:
        queued, self.queued = self.queued, []
        refused: dict[str, KafkaError] = {}
        for written, _ in queued:
            err = self.refuse(written.topic, written.value)
            if err is not None:
                refused.setdefault(written.topic, err)
        for written, report in queued:
            err = refused.get(written.topic)  # a refusal fails the whole request to that topic
            if err is None:
                if self.pending is not None:
                    self.pending.append(written)
                else:
                    self.broker.topics.setdefault(written.topic, []).append(written)
            if report is not None:
                report(err, Message(topic=written.topic, value=written.value, key=written.key))
        return 0

    def init_transactions(self, timeout: float = -1) -> None:
        self.calls.append("init")

    def begin_transaction(self) -> None:
        if self.fatal is not None:
            raise KafkaException(self.fatal)
        assert self.pending is None, "a transaction is already open"
        self.calls.append("begin")
        self.pending, self.pending_offsets = [], {}

    def send_offsets_to_transaction(
        self, positions: list[TopicPartition], group_metadata: Any, timeout: float = -1
    ) -> None:
        assert self.pending is not None, "no transaction is open"
        if self.offsets_errors:
            raise KafkaException(self.offsets_errors.pop(0))
        self.pending_offsets = {(tp.topic, tp.partition): tp.offset for tp in positions}

    def commit_transaction(self, timeout: float = -1) -> None:
        assert self.pending is not None, "no transaction is open"
        if self.commit_errors:
            raise KafkaException(self.commit_errors.pop(0))
        self.calls.append("commit")
        for written in self.pending:
            self.broker.topics.setdefault(written.topic, []).append(written)
        self.broker.committed.update(self.pending_offsets)
        self.pending = None

    def abort_transaction(self, timeout: float = -1) -> None:
        if self.fatal is not None:
            raise KafkaException(self.fatal)
        assert self.pending is not None, "no transaction is open"
        self.calls.append("abort")
        self.queued = []
        self.pending = None
