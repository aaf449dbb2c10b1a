"""The worker's consumer: a member of the group, cooperative rebalancing, read_committed, offsets
managed by the worker (never auto-committed).

Rebalance callbacks only run inside ``consume()``, and the worker commits or aborts a batch's
transaction before it polls again, so a revoke never lands in the middle of a transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import structlog
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from stream_anon.acls import AUTHORIZATION_ERRORS
from stream_anon.config import Settings
from stream_anon.kafka.batch import Batch
from stream_anon.kafka.clients import group_consumer_config
from stream_anon.kafka.errors import FatalKafkaError, NotAuthorized
from stream_anon.kafka.protocols import Observer
from stream_anon.records import REPLAY_COUNT_HEADER, InputRecord

log = structlog.get_logger(__name__)


def to_input(msg: Message) -> InputRecord:
    _, ts = msg.timestamp()
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    assert topic is not None and partition is not None and offset is not None
    # input headers are not carried over: they may hold PII that no rule covers; only a replayed
    # record's replay count is read, so its next dead letter counts on (stream_anon.dlq.replay)
    headers = msg.headers()
    replays = replay_count(headers) if isinstance(headers, list) else 0
    return InputRecord(topic, partition, offset, ts, msg.key(), msg.value(), replays)


def replay_count(headers: list[tuple[str, str | bytes | None]]) -> int:
    for name, value in headers:
        if name == REPLAY_COUNT_HEADER and isinstance(value, bytes) and value.isdigit():
            return int(value)
    return 0


class KafkaSource:
    """The input side (a ``BatchSource``): a consumer in the group over ``settings.input_topics``.

    ``on_revoke`` is told the (topic, partition) pairs this worker no longer owns.
    """

    def __init__(
        self,
        settings: Settings,
        observer: Observer,
        on_revoke: Callable[[list[tuple[str, int]]], None],
    ) -> None:
        conf = group_consumer_config(
            settings,
            settings.group_id,
            {
                "enable.auto.offset.store": False,
                "partition.assignment.strategy": "cooperative-sticky",
                "statistics.interval.ms": 5000,
                "stats_cb": observer.stats,
                "error_cb": self._on_error,
            },
        )
        self._observer = observer
        self._on_revoke_cb = on_revoke
        self.consumer = Consumer(conf)
        self.assigned: set[tuple[str, int]] = set()
        self.fatal: KafkaError | None = None
        self.consumer.subscribe(
            list(settings.input_topics),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )

    def _on_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self._observer.broker(False)
        if err.fatal() or err.code() in AUTHORIZATION_ERRORS:
            self.fatal = err
        log.warning("consumer_error", code=err.name(), error=err.str())

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.assigned.update((tp.topic, tp.partition) for tp in partitions)
        self._observer.assignment(len(self.assigned))
        log.info("partitions_assigned", partitions=[f"{tp.topic}[{tp.partition}]" for tp in partitions])

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        gone = [(tp.topic, tp.partition) for tp in partitions]
        self.assigned.difference_update(gone)
        self._observer.assignment(len(self.assigned))
        self._on_revoke_cb(gone)
        log.info("partitions_revoked", partitions=[f"{tp.topic}[{tp.partition}]" for tp in partitions])

    def poll_batch(self, max_records: int, timeout_s: float, linger_s: float = 0.0) -> Batch:
        """Up to ``max_records`` records: whatever the client has fetched, or else the first to arrive
        within ``timeout_s``; then, short of a full batch, whatever else arrives within ``linger_s``.

        A batch never waits for ``max_records`` to be there: below saturation a record waits at most
        for one batch (latency), and under load batches fill up by themselves (throughput). ``linger_s``
        trades a little latency for fewer, larger transactions at moderate rates. Records of a
        partition revoked while polling are left for its next owner.
        """
        consume = self.consumer.consume
        messages = consume(num_messages=max_records, timeout=0)
        if not messages:
            messages = consume(num_messages=1, timeout=timeout_s)
        if messages and len(messages) < max_records:
            messages.extend(consume(num_messages=max_records - len(messages), timeout=linger_s))
        batch = Batch([])
        assigned = self.assigned
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.fatal():
                    raise FatalKafkaError(f"consumer failed: {err.str()}")
                if err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise FatalKafkaError(f"input topic {msg.topic()} does not exist")
                if err.code() in AUTHORIZATION_ERRORS:
                    raise NotAuthorized(err.code(), msg.topic())
                log.warning("consume_error", code=err.name(), error=err.str())
                continue
            rec = to_input(msg)
            tp = (rec.topic, rec.partition)
            if tp not in assigned:
                continue
            batch.start.setdefault(tp, rec.offset)
            batch.end[tp] = rec.offset + 1
            batch.records.append(rec)
        if messages:
            self._observer.broker(True)
        return batch

    def rewind(self, batch: Batch) -> None:
        for (topic, partition), offset in batch.start.items():
            if (topic, partition) in self.assigned:
                self.consumer.seek(TopicPartition(topic, partition, offset))

    def commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        positions = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        self.consumer.commit(offsets=positions, asynchronous=False)

    def group_metadata(self) -> Any:
        return self.consumer.consumer_group_metadata()

    def close(self) -> None:
        self.consumer.close()
