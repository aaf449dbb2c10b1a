"""The Kafka loop around the aggregation core: consume the sanitized topic, publish closed windows.

One process per aggregate job reads every partition of the source topic (``assign``, not a group
subscription), because a window's figures need all of its records: split across processes, each would
publish a partial count with its own noise. The fixed ``transactional.id`` enforces it across hosts (a
second instance fences the first, which stops at its next transaction) and the ledger's file lock on
one host. Scale-out is one job per source topic or per configuration, not more processes per job.

Exactly once: a window's release goes out in one transaction with the consumer offsets, and those
offsets never pass the first record of a window still open, so a restart re-reads every record of every
unpublished window; records of windows the ledger marks published are skipped. The ledger is charged
with the noisy release before the transaction starts, so a retry publishes the same values again.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any, Protocol

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from stream_anon.aggregate.ledger import Ledger
from stream_anon.aggregate.metrics import AggregateMetrics, SkipReason
from stream_anon.aggregate.noise import Mechanisms
from stream_anon.aggregate.record import AGGREGATE_SCHEMA, AggregateEncoder, record_key
from stream_anon.aggregate.release import Release, Releaser
from stream_anon.aggregate.settings import AggregateSettings
from stream_anon.aggregate.windows import WindowedAggregation
from stream_anon.config import Settings
from stream_anon.health import Health
from stream_anon.kafka.clients import check_topics, group_consumer_config, transactional_producer_config
from stream_anon.kafka.errors import FatalKafkaError
from stream_anon.kafka.transactions import TransactionAborted, Transactions
from stream_anon.schemas import SchemaResolver
from stream_anon.wire import WireError

log = structlog.get_logger(__name__)


# Metadata of the committed offsets: this prefix and the number of windows the ledger had charged.
LEDGER_MARK = "stream-anon-ledger-windows:"


class PublishFailed(FatalKafkaError):
    """A release could not be published (transaction aborted, fenced by a newer instance)."""


class RecordReader(Protocol):
    """Decodes a sanitized record (``app.sanitized_reader``); ``resolver`` gives the aggregates' frame."""

    @property
    def resolver(self) -> SchemaResolver: ...

    def read(self, value: bytes) -> dict[str, Any]: ...


class AggregateJob:
    """consume -> windows -> (on close) noise, ledger, one transaction with the offsets."""

    def __init__(
        self,
        settings: Settings,
        aggregate: AggregateSettings,
        ledger: Ledger,
        metrics: AggregateMetrics | None = None,
        health: Health | None = None,
        *,
        reader: RecordReader,
    ) -> None:
        """``reader`` decodes the source topic's records (``app.aggregate_job`` assembles the job)."""
        self._settings = settings
        self._s = aggregate
        self._ledger = ledger
        self.metrics = metrics if metrics is not None else AggregateMetrics()
        self._health = health
        self._reader = reader
        self._mechanisms = Mechanisms(aggregate)
        self._releaser = Releaser(aggregate, self._mechanisms, ledger, self.metrics)
        self.core = WindowedAggregation(
            aggregate,
            self.metrics,
            ledger.is_published,
            ledger.admitter(self._mechanisms.window_spend.epsilon),
        )
        self._stop = threading.Event()
        self._timeout = settings.shutdown_timeout_s

    def stop(self, *_: object) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def run(self, until_idle_s: float | None = None, close_open_windows: bool = False) -> None:
        """Until stopped (or idle for ``until_idle_s``); ``close_open_windows`` publishes every open window
        at that point instead of waiting for the watermark (backfills, batch runs)."""
        s = self._s
        check_topics(self._settings, topics=[s.source_topic, s.aggregates_topic])
        self._check_ledger_matches_topic()
        encoder = AggregateEncoder(self._reader.resolver.derived_header(AGGREGATE_SCHEMA, s.aggregates_topic))
        producer = Producer(transactional_producer_config(self._settings, s.effective_transactional_id))
        # Fences an earlier instance of this job (see the module docstring).
        transactions = Transactions(producer, self._timeout)
        consumer = Consumer(
            group_consumer_config(
                self._settings,
                s.group_id,
                # End-of-partition events tell the watermark a partition has no backlog left.
                {"enable.partition.eof": True},
            )
        )
        try:
            partitions = self._assign_all(consumer)
            if self._health is not None:
                self._health.set_assignment(partitions)
                self._health.set_broker_up(True)
            self._loop(consumer, producer, transactions, encoder, until_idle_s, close_open_windows)
        finally:
            if self._health is not None:
                self._health.set_stopping()
            consumer.close()
            producer.flush(self._timeout)

    def _assign_all(self, consumer: Consumer) -> int:
        topic = self._s.source_topic
        metadata = consumer.list_topics(topic, timeout=30)
        partitions = sorted(metadata.topics[topic].partitions)
        # No offset given: each partition resumes from the group's committed offset (else the earliest).
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        self.core.expect((topic, p) for p in partitions)
        log.info("aggregate_assigned", topic=topic, partitions=len(partitions))
        return len(partitions)

    def _loop(
        self,
        consumer: Consumer,
        producer: Producer,
        transactions: Transactions,
        encoder: AggregateEncoder,
        until_idle_s: float | None,
        close_open_windows: bool,
    ) -> None:
        last_input = time.monotonic()
        last_commit = time.monotonic()
        committed: dict[tuple[str, int], int] = {}
        while not self._stop.is_set():
            if self._health is not None:
                self._health.beat()
            messages = consumer.consume(self._s.batch_size, self._s.poll_timeout_s)
            if messages:
                last_input = time.monotonic()
            for message in messages:
                self._add(message)
            idle = until_idle_s is not None and time.monotonic() - last_input >= until_idle_s
            closed = self.core.close_ready(close_all=idle and close_open_windows)
            due = time.monotonic() - last_commit >= self._s.commit_interval_s or idle
            offsets = self.core.committable_offsets()
            if closed or (due and offsets != committed):
                releases = [r for r in (self._releaser.release(w) for w in closed) if r is not None]
                self._publish(producer, consumer, transactions, encoder, releases, offsets)
                committed, last_commit = offsets, time.monotonic()
            if idle:
                log.info("aggregate_idle_stop", idle_s=until_idle_s)
                return
        # Stopped by a signal: commit how far the published windows reach; open windows are re-read.
        offsets = self.core.committable_offsets()
        if offsets != committed:
            self._publish(producer, consumer, transactions, encoder, [], offsets)

    def _add(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                self.core.caught_up((message.topic() or "", message.partition() or 0))
                return
            if error.fatal():
                raise FatalKafkaError(f"consumer error: {error.str()}")
            log.warning("consumer_error", code=error.name())
            return
        position = (message.topic() or "", message.partition() or 0)
        offset = message.offset() or 0
        kind, timestamp = message.timestamp()
        try:
            record = self._reader.read(message.value() or b"")
        except WireError as exc:
            log.warning("aggregate_undecodable", partition=position[1], offset=offset, reason=exc.kind.value)
            self.core.skip(SkipReason.UNDECODABLE, position, offset)
            return
        event_ms = timestamp if kind != 0 else None  # 0 = TIMESTAMP_NOT_AVAILABLE
        self.core.add(record, event_ms, position, offset)

    def _publish(
        self,
        producer: Producer,
        consumer: Consumer,
        transactions: Transactions,
        encoder: AggregateEncoder,
        releases: list[Release],
        offsets: dict[tuple[str, int], int],
    ) -> None:
        topic = self._s.aggregates_topic
        failures: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                failures.append(err)  # inspected after flush: a callback must not call back into the client

        try:
            transactions.begin()
            for release in releases:
                for record in release.records:
                    producer.produce(topic, encoder(record), record_key(record), on_delivery=on_delivery)
            producer.flush(self._timeout)
            if failures:
                codes = ", ".join(sorted({f.name() for f in failures}))
                raise FatalKafkaError(f"{len(failures)} aggregate write(s) failed: {codes}")
            # The offsets carry how many windows the ledger has charged: a ledger lost or restored from
            # an older copy is then detected at start even when nothing reached the aggregates topic.
            mark = f"{LEDGER_MARK}{self._ledger.charged_windows}"
            transactions.commit(offsets, consumer.consumer_group_metadata(), metadata=mark)
        except (KafkaException, FatalKafkaError, TransactionAborted, SystemError) as exc:
            # A fatal error (fenced by a newer instance) raised inside flush() while delivery callbacks
            # run surfaces as a SystemError whose cause is the KafkaException.
            cause = exc.__cause__ if isinstance(exc, SystemError) else exc
            self._abort(transactions)
            reason = cause.args[0].str() if isinstance(cause, KafkaException) else str(cause)
            # The ledger holds the releases: the restarted job publishes the same values, no new noise.
            raise PublishFailed(f"publishing aggregates failed, transaction aborted: {reason}") from None
        for release in releases:
            self._ledger.mark_published(release.start_ms)
            self.metrics.windows.inc()
            self.metrics.cohorts.inc(len(release.records))
            log.info(
                "window_published",
                window_start=release.start_ms,
                cohorts=len(release.records),
                replayed=release.replayed,
            )

    def _abort(self, transactions: Transactions) -> None:
        try:
            transactions.abort()
        except FatalKafkaError as exc:
            log.warning("abort_failed", error=str(exc))

    def _check_ledger_matches_topic(self) -> None:
        """A ledger behind what was published means it was lost or restored from an older copy: starting
        with it would spend the budget of every window it forgot a second time. Two witnesses: the
        aggregates topic (an empty ledger next to published aggregates), and the committed offsets,
        which record how many windows the ledger had charged (covering windows whose cohorts were all
        suppressed, and a topic whose records expired)."""
        source, topic = self._s.source_topic, self._s.aggregates_topic
        consumer = Consumer(group_consumer_config(self._settings, self._s.group_id))
        try:
            if self._ledger.empty:
                metadata = consumer.list_topics(topic, timeout=30)
                for p in metadata.topics[topic].partitions:
                    low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
                    if high > low:
                        raise FatalKafkaError(
                            f"the ledger {self._ledger.path} is empty but {topic} already holds aggregates: "
                            "restore the ledger, or publish to a new aggregates topic"
                        )
            metadata = consumer.list_topics(source, timeout=30)
            partitions = [TopicPartition(source, p) for p in metadata.topics[source].partitions]
            recorded = 0
            for tp in consumer.committed(partitions, timeout=30):
                mark = tp.metadata or ""
                if mark.startswith(LEDGER_MARK) and mark[len(LEDGER_MARK) :].isdigit():
                    recorded = max(recorded, int(mark[len(LEDGER_MARK) :]))
            if recorded > self._ledger.charged_windows:
                raise FatalKafkaError(
                    f"the ledger {self._ledger.path} holds {self._ledger.charged_windows} charged window(s) "
                    f"but the job's committed offsets record {recorded}: the ledger was lost or restored "
                    "from an older copy. Restore it, or publish to a new aggregates topic with a new group_id"
                )
        finally:
            consumer.close()
