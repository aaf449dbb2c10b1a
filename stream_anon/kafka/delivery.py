"""The commit strategies: how a batch's outcomes reach Kafka and its offsets get committed.

* ``ExactlyOnce``: one transaction per batch, the consumed offsets committed inside it; a failed write
  aborts the transaction, so nothing of the batch is visible and it is processed again.
* ``AtLeastOnce``: an idempotent producer; offsets are committed after every write is acknowledged, so a
  crash in between writes the batch again.

Both raise ``BatchAborted`` when the batch must be processed again, ``FatalKafkaError`` when the
worker cannot go on. ``open_clients`` builds the worker's consumer and strategy from ``Settings``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import structlog
from confluent_kafka import KafkaError, Producer

from stream_anon.config import Settings
from stream_anon.kafka.batch import Batch
from stream_anon.kafka.clients import check_topics, idempotent_producer_config, transactional_producer_config
from stream_anon.kafka.errors import BatchAborted
from stream_anon.kafka.protocols import BatchSource, Observer, ProducerClient
from stream_anon.kafka.source import KafkaSource
from stream_anon.kafka.transactions import TransactionAborted, Transactions
from stream_anon.kafka.writes import OutcomeWriter, SealDeadLetter
from stream_anon.records import Outcome

log = structlog.get_logger(__name__)

OutputKey = Callable[[bytes | None], bytes | None]


class Delivery(Protocol):
    """A commit strategy, one batch at a time: ``begin``, ``produce``, then ``commit``, which raises
    ``BatchAborted`` when the batch's writes failed (exactly-once: after aborting the transaction)."""

    def begin(self) -> None: ...
    def produce(self, outcomes: list[Outcome]) -> None: ...
    def commit(self, batch: Batch, source: BatchSource) -> None: ...
    def close(self) -> None: ...


class ExactlyOnce(OutcomeWriter):
    """One transaction per batch; the consumed offsets commit inside it."""

    def __init__(
        self,
        producer: ProducerClient,
        output_topic: str,
        dlq_topic: str,
        timeout_s: float,
        output_key: OutputKey | None = None,
        seal_dead_letter: SealDeadLetter | None = None,
    ) -> None:
        super().__init__(producer, output_topic, dlq_topic, output_key, seal_dead_letter)
        self._timeout = timeout_s
        self._transactions = Transactions(producer, timeout_s)

    def begin(self) -> None:
        self.reset()
        self._transactions.begin()

    def commit(self, batch: Batch, source: BatchSource) -> None:
        self.producer.flush(self._timeout)
        try:
            self.check_failures()
        except BatchAborted:
            self.abort()
            raise
        try:
            self._transactions.commit(batch.end, source.group_metadata())
        except TransactionAborted as exc:
            self.abort()
            raise BatchAborted(str(exc)) from None

    def abort(self) -> None:
        self._transactions.abort()

    def close(self) -> None:
        self.producer.flush(self._timeout)


class AtLeastOnce(OutcomeWriter):
    """Idempotent producer; offsets are committed after the batch's writes are acknowledged."""

    def __init__(
        self,
        producer: ProducerClient,
        output_topic: str,
        dlq_topic: str,
        timeout_s: float,
        output_key: OutputKey | None = None,
        seal_dead_letter: SealDeadLetter | None = None,
    ) -> None:
        super().__init__(producer, output_topic, dlq_topic, output_key, seal_dead_letter)
        self._timeout = timeout_s

    def begin(self) -> None:
        self.reset()

    def commit(self, batch: Batch, source: BatchSource) -> None:
        remaining = self.producer.flush(self._timeout)
        if remaining:
            raise BatchAborted(f"{remaining} write(s) not acknowledged in time")
        self.check_failures()
        source.commit(batch.end)

    def close(self) -> None:
        self.producer.flush(self._timeout)


def producer_callbacks(observer: Observer) -> dict[str, Any]:
    """The producer reports broker outages too: a batch in flight blocks in flush or commit, where only
    the producer's callbacks run, so readiness must not wait for the consumer to notice."""

    def on_error(err: KafkaError) -> None:
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            observer.broker(False)
        log.warning("producer_error", code=err.name(), error=err.str())

    return {"error_cb": on_error, "statistics.interval.ms": 5000, "stats_cb": observer.broker_stats}


def open_delivery(
    settings: Settings,
    observer: Observer,
    output_key: OutputKey | None = None,
    seal_dead_letter: SealDeadLetter | None = None,
) -> Delivery:
    """The strategy ``settings.delivery`` names, on a producer configured for it."""
    role = {"compression.type": "lz4", **producer_callbacks(observer)}
    topics = (settings.output_topic, settings.dlq_topic)
    if settings.delivery == "exactly_once":
        producer = Producer(
            transactional_producer_config(settings, settings.effective_transactional_id, role)
        )
        return ExactlyOnce(producer, *topics, settings.shutdown_timeout_s, output_key, seal_dead_letter)
    producer = Producer(idempotent_producer_config(settings, role))
    return AtLeastOnce(producer, *topics, settings.shutdown_timeout_s, output_key, seal_dead_letter)


def open_clients(
    settings: Settings,
    observer: Observer,
    on_revoke: Callable[[list[tuple[str, int]]], None],
    output_key: OutputKey | None = None,
    seal_dead_letter: SealDeadLetter | None = None,
) -> tuple[BatchSource, Delivery]:
    """The worker's clients, in order: the topics and rights checked (fail fast and clearly), the
    strategy (whose transactional producer fences an older instance), then the consumer joining the
    group."""
    check_topics(settings, timeout_s=settings.connect_timeout_s)
    delivery = open_delivery(settings, observer, output_key, seal_dead_letter)
    return KafkaSource(settings, observer, on_revoke), delivery
