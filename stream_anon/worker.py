"""The Kafka worker: consume a batch, run the pipeline, produce, commit; one loop, small parts.

* ``Source``: the consumer (cooperative rebalancing, read_committed, manual offsets).
* ``Delivery``: how outcomes reach Kafka and offsets get committed; ``ExactlyOnce`` (a transaction per
  batch with the offsets inside it) or ``AtLeastOnce`` (flush, then commit offsets).
* ``Worker``: the loop that joins them, and the shutdown and retry policy.

Rebalance callbacks only run inside ``consume()``, and a batch's transaction is always committed or
aborted before the next ``consume()``, so a revoke never lands in the middle of a transaction.
"""

from __future__ import annotations

import faulthandler
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from stream_anon import heap
from stream_anon.acls import AUTHORIZATION_ERRORS, missing_rights, not_authorized, refused
from stream_anon.config import Settings
from stream_anon.pipeline import Pipeline
from stream_anon.records import (
    HEADER_PREFIX,
    REPLAY_COUNT_HEADER,
    DeadLetter,
    InputRecord,
    Outcome,
    Reason,
    Sanitized,
)
from stream_anon.registry import RegistryError, RegistryUnavailable

log = structlog.get_logger(__name__)

SourceKey = tuple[str, int, int]  # topic, partition, offset
SealDeadLetter = Callable[[DeadLetter], tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]]

# Broker verdicts that will not change on retry: the record itself is unacceptable to the topic.
_PERMANENT_PRODUCE_ERRORS = {
    KafkaError.MSG_SIZE_TOO_LARGE,
    KafkaError.RECORD_LIST_TOO_LARGE,
    KafkaError.INVALID_RECORD,
    KafkaError.INVALID_MSG,
    KafkaError.INVALID_MSG_SIZE,
}


_SOURCE_TOPIC = HEADER_PREFIX + "source.topic"
_SOURCE_PARTITION = HEADER_PREFIX + "source.partition"
_SOURCE_OFFSET = HEADER_PREFIX + "source.offset"


class WorkerError(Exception):
    """A configuration or connectivity problem: the worker stops with this message and a non-zero exit."""


class Observer(Protocol):
    """What the worker reports as it goes (metrics and health implement it)."""

    def consumed(self, records: list[InputRecord]) -> None: ...
    def stage(self, name: str, seconds: float) -> None: ...
    def delivered(self, outcomes: list[Outcome], output_topic: str, dlq_topic: str) -> None: ...
    def transaction(self, committed: bool) -> None: ...
    def loop(self) -> None: ...
    def assignment(self, partitions: int) -> None: ...
    def broker(self, up: bool) -> None: ...
    def stats(self, stats_json: str) -> None: ...
    def broker_stats(self, stats_json: str) -> None: ...
    def registry(self, error: RegistryError | None) -> None: ...
    def committed(self, offsets: dict[tuple[str, int], int]) -> None: ...


class NullObserver:
    def consumed(self, records: list[InputRecord]) -> None: ...
    def stage(self, name: str, seconds: float) -> None: ...
    def delivered(self, outcomes: list[Outcome], output_topic: str, dlq_topic: str) -> None: ...
    def transaction(self, committed: bool) -> None: ...
    def loop(self) -> None: ...
    def assignment(self, partitions: int) -> None: ...
    def broker(self, up: bool) -> None: ...
    def stats(self, stats_json: str) -> None: ...
    def broker_stats(self, stats_json: str) -> None: ...
    def registry(self, error: RegistryError | None) -> None: ...
    def committed(self, offsets: dict[tuple[str, int], int]) -> None: ...


class WriteRefused(Exception):
    """The broker refused a write for want of a right: retrying cannot help, the worker stops."""

    def __init__(self, code: int, topic: str | None) -> None:
        super().__init__(f"{KafkaError(code).name()} on {topic}")
        self.code = code
        self.topic = topic


class BatchAborted(Exception):
    """The batch's writes were thrown away; rewind and process it again."""

    def __init__(self, why: str, rejected: dict[SourceKey, str] | None = None) -> None:
        super().__init__(why)
        self.rejected = rejected or {}


@dataclass(slots=True)
class Batch:
    records: list[InputRecord]
    # first offset per partition, to rewind to after an abort
    start: dict[tuple[str, int], int] = field(default_factory=dict)
    # next offset to commit per partition
    end: dict[tuple[str, int], int] = field(default_factory=dict)


def batch_of(records: list[InputRecord]) -> Batch:
    batch = Batch(records)
    for rec in records:
        tp = (rec.topic, rec.partition)
        batch.start.setdefault(tp, rec.offset)
        batch.end[tp] = rec.offset + 1
    return batch


def merge(batches: list[Batch]) -> Batch:
    """The batch that spans all of ``batches`` (for rewinding past several of them)."""
    return batch_of([r for b in batches for r in b.records])


def split_around(
    batch: Batch, outcomes: list[Outcome], suspects: set[SourceKey]
) -> list[tuple[Batch, list[Outcome]]]:
    """The batch as one segment, or cut so that each suspect record travels alone."""
    if not suspects or not any((r.topic, r.partition, r.offset) in suspects for r in batch.records):
        return [(batch, outcomes)]
    segments: list[tuple[Batch, list[Outcome]]] = []
    run: list[int] = []
    for i, rec in enumerate(batch.records):
        if (rec.topic, rec.partition, rec.offset) in suspects:
            if run:
                segments.append((batch_of([batch.records[j] for j in run]), [outcomes[j] for j in run]))
                run = []
            segments.append((batch_of([rec]), [outcomes[i]]))
        else:
            run.append(i)
    if run:
        segments.append((batch_of([batch.records[j] for j in run]), [outcomes[j] for j in run]))
    return segments


def to_input(msg: Message) -> InputRecord:
    _, ts = msg.timestamp()
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    assert topic is not None and partition is not None and offset is not None
    # input headers are not carried over: they may hold PII that no rule covers; only a replayed
    # record's replay count is read, so its next dead letter counts on (stream_anon.dlq.replay)
    headers = msg.headers()
    replays = _replay_count(headers) if isinstance(headers, list) else 0
    return InputRecord(topic, partition, offset, ts, msg.key(), msg.value(), replays)


def _replay_count(headers: list[tuple[str, str | bytes | None]]) -> int:
    for name, value in headers:
        if name == REPLAY_COUNT_HEADER and isinstance(value, bytes) and value.isdigit():
            return int(value)
    return 0


class Source:
    """The input side: a consumer in the group, offsets managed by the worker."""

    def __init__(
        self, settings: Settings, observer: Observer, on_revoke: Callable[[list[TopicPartition]], None]
    ):
        conf: dict[str, Any] = {
            "group.id": settings.group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "partition.assignment.strategy": "cooperative-sticky",
            "statistics.interval.ms": 5000,
            "stats_cb": observer.stats,
            "error_cb": self._on_error,
            **settings.librdkafka(),
        }
        self._observer = observer
        self._settings = settings
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
        self.assigned.difference_update((tp.topic, tp.partition) for tp in partitions)
        self._observer.assignment(len(self.assigned))
        self._on_revoke_cb(partitions)
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
                    raise WorkerError(f"consumer failed: {err.str()}")
                if err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise WorkerError(f"input topic {msg.topic()} does not exist")
                if err.code() in AUTHORIZATION_ERRORS:
                    raise WorkerError(refused(self._settings, err.code(), msg.topic()))
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

    def close(self) -> None:
        self.consumer.close()


class Delivery(Protocol):
    def begin(self) -> None: ...
    def produce(self, outcomes: list[Outcome]) -> None: ...
    def commit(self, batch: Batch, consumer: Consumer) -> None: ...
    def abort(self) -> None: ...
    def close(self) -> None: ...


class _Producing:
    """Writing outcomes, shared by both delivery modes: sanitized to the output, the rest to the DLQ."""

    def __init__(self, producer: Producer, output_topic: str, dlq_topic: str) -> None:
        self.producer = producer
        self.output_key: Callable[[bytes | None], bytes | None] = lambda key: key
        # Seals a dead letter's key and value at rest (stream_anon.dlq.seal), when the keys file says so.
        self.seal_dead_letter: SealDeadLetter | None = None
        self.output_topic = output_topic
        self.dlq_topic = dlq_topic
        self.failures: dict[SourceKey, KafkaError] = {}
        # What this batch has produced, and the writes reported failed, matched after the flush.
        self._produced: list[list[Outcome]] = []
        self._undelivered: list[tuple[KafkaError, str | None, bytes | None]] = []
        self._refusals: list[tuple[KafkaError, str | None, bytes | None]] = []

    def reset(self) -> None:
        """Forget the last batch's writes (at the start of each batch)."""
        self.failures = {}
        self._produced = []
        self._undelivered = []

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        # One bound callback for every record (a closure per record cost ~2 us); the rare failure is
        # tied to its source after the flush, by what was written where (see _resolve_undelivered).
        if err is not None:
            self._undelivered.append((err, msg.topic(), msg.value()))

    def _send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, str | bytes | None]] | None,
        source: SourceKey,
    ) -> None:
        while True:
            try:
                self.producer.produce(topic, value, key, headers=headers, on_delivery=self._on_delivery)
                return
            except BufferError:
                self.producer.poll(0.05)  # local queue full: let deliveries drain
            except KafkaException as exc:
                self.failures[source] = exc.args[0]
                return

    def written(self, outcome: Outcome) -> tuple[str, bytes | None]:
        """The topic an outcome is written to and the bytes written there: sanitized bytes to the output,
        the raw bytes to the DLQ. The one place that says so, for writing and for matching failures."""
        if isinstance(outcome, Sanitized):
            return self.output_topic, outcome.value
        return self.dlq_topic, self.dead_letter(outcome)[1]

    def dead_letter(self, letter: DeadLetter) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
        """A dead letter's key, value and headers as written: the raw bytes, or sealed. A tombstone stays
        a null value, so a replay recreates it."""
        if self.seal_dead_letter is None:
            return letter.source.key, letter.source.value, letter.headers()
        return self.seal_dead_letter(letter)

    def produce(self, outcomes: list[Outcome]) -> None:
        self._produced.append(outcomes)
        for outcome in outcomes:
            src = outcome.source
            key = (src.topic, src.partition, src.offset)
            if isinstance(outcome, Sanitized):
                # lineage: which input record this is, so readers can audit exactly-once end to end
                lineage: list[tuple[str, str | bytes | None]] = [
                    (_SOURCE_TOPIC, src.topic.encode()),
                    (_SOURCE_PARTITION, str(src.partition).encode()),
                    (_SOURCE_OFFSET, str(src.offset).encode()),
                ]
                self._send(self.output_topic, self.output_key(src.key), outcome.value, lineage, key)
            else:
                dlq_key, value, headers = self.dead_letter(outcome)
                self._send(self.dlq_topic, dlq_key, value, list(headers), key)
        self.producer.poll(0)

    def _resolve_undelivered(self) -> None:
        """Each failed write's source: every record of the batch that wrote the same bytes to the same
        topic (identical outputs of several records all become suspects, which costs only a retry)."""
        for err, topic, value in self._undelivered:
            matched = False
            for outcomes in self._produced:
                for o in outcomes:
                    if self.written(o) == (topic, value):
                        src = o.source
                        self.failures[(src.topic, src.partition, src.offset)] = err
                        matched = True
            if not matched:
                self.failures[("", -1, -1)] = err  # names no record: the batch is retried as a whole
        self._undelivered = []

    def check_failures(self) -> None:
        """After a flush: any failed write aborts the batch; permanent rejections are named for the retry."""
        self._refusals = [u for u in self._undelivered if u[0].code() in AUTHORIZATION_ERRORS]
        if self._undelivered:
            self._resolve_undelivered()
        if not self.failures:
            return
        for err, topic, _ in self._refusals:
            raise WriteRefused(err.code(), topic)
        failures, self.failures = self.failures, {}
        rejected = {k: e.name() for k, e in failures.items() if e.code() in _PERMANENT_PRODUCE_ERRORS}
        codes = sorted({e.name() for e in failures.values()})
        raise BatchAborted(f"{len(failures)} write(s) failed: {', '.join(codes)}", rejected)


def producer_callbacks(observer: Observer) -> dict[str, Any]:
    """The producer reports broker outages too: a batch in flight blocks in flush or commit, where only
    the producer's callbacks run, so readiness must not wait for the consumer to notice."""

    def on_error(err: KafkaError) -> None:
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            observer.broker(False)
        log.warning("producer_error", code=err.name(), error=err.str())

    return {"error_cb": on_error, "statistics.interval.ms": 5000, "stats_cb": observer.broker_stats}


class ExactlyOnce(_Producing):
    """One transaction per batch; the consumed offsets commit inside it."""

    def __init__(self, settings: Settings, observer: Observer) -> None:
        producer = Producer(
            {
                "transactional.id": settings.effective_transactional_id,
                "transaction.timeout.ms": settings.transaction_timeout_s * 1000,
                "linger.ms": 5,
                "compression.type": "lz4",
                **producer_callbacks(observer),
                **settings.librdkafka(),
            }
        )
        super().__init__(producer, settings.output_topic, settings.dlq_topic)
        self._timeout = settings.shutdown_timeout_s
        self._settings = settings
        # Fences an earlier instance with the same transactional id and aborts its hanging transaction.
        try:
            _retry_retriable(lambda: producer.init_transactions(self._timeout), "init_transactions")
        except KafkaException as exc:
            code = exc.args[0].code()
            if code in AUTHORIZATION_ERRORS:
                raise WorkerError(refused(settings, code)) from None
            raise WorkerError(f"cannot start transactions: {exc.args[0].str()}") from None

    def begin(self) -> None:
        self.reset()
        self.producer.begin_transaction()

    def commit(self, batch: Batch, consumer: Consumer) -> None:
        self.producer.flush(self._timeout)
        try:
            self.check_failures()
        except BatchAborted:
            self.abort()
            raise
        offsets = [TopicPartition(t, p, o) for (t, p), o in batch.end.items()]
        try:
            self.producer.send_offsets_to_transaction(
                offsets, consumer.consumer_group_metadata(), self._timeout
            )
            _retry_retriable(lambda: self.producer.commit_transaction(self._timeout), "commit_transaction")
        except KafkaException as exc:
            err: KafkaError = exc.args[0]
            if err.code() in AUTHORIZATION_ERRORS:
                raise WorkerError(refused(self._settings, err.code())) from None
            if err.txn_requires_abort():
                self.abort()
                raise BatchAborted(f"transaction aborted: {err.name()}") from None
            raise WorkerError(f"transaction failed: {err.str()}") from None

    def abort(self) -> None:
        try:
            _retry_retriable(lambda: self.producer.abort_transaction(self._timeout), "abort_transaction")
        except KafkaException as exc:
            raise WorkerError(f"cannot abort the transaction: {exc.args[0].str()}") from None

    def close(self) -> None:
        self.producer.flush(self._timeout)


class AtLeastOnce(_Producing):
    """Idempotent producer; offsets are committed after the batch's writes are acknowledged."""

    def __init__(self, settings: Settings, observer: Observer) -> None:
        producer = Producer(
            {
                "enable.idempotence": True,
                "linger.ms": 5,
                "compression.type": "lz4",
                **producer_callbacks(observer),
                **settings.librdkafka(),
            }
        )
        super().__init__(producer, settings.output_topic, settings.dlq_topic)
        self._timeout = settings.shutdown_timeout_s

    def begin(self) -> None:
        self.reset()

    def commit(self, batch: Batch, consumer: Consumer) -> None:
        remaining = self.producer.flush(self._timeout)
        if remaining:
            raise BatchAborted(f"{remaining} write(s) not acknowledged in time")
        self.check_failures()
        offsets = [TopicPartition(t, p, o) for (t, p), o in batch.end.items()]
        consumer.commit(offsets=offsets, asynchronous=False)

    def abort(self) -> None:
        self.producer.purge()  # already-sent records may stay: that is at-least-once

    def close(self) -> None:
        self.producer.flush(self._timeout)


def _retry_retriable(call: Callable[[], None], what: str, attempts: int = 10) -> None:
    for attempt in range(attempts):
        try:
            call()
            return
        except KafkaException as exc:
            err: KafkaError = exc.args[0]
            if not err.retriable() or attempt == attempts - 1:
                raise
            log.warning("retrying", call=what, code=err.name())
            time.sleep(min(0.2 * 2**attempt, 5.0))


def check_rights(settings: Settings, timeout_s: float = 10.0) -> None:
    """Raise a WorkerError naming the rights the worker lacks on its topics and group, if any.

    Run after a failure whose client error does not say why: a transaction that fails because a right
    was revoked purges its records (_PURGE_QUEUE) and may leave only INVALID_TXN_STATE behind."""
    try:
        missing = missing_rights(AdminClient(settings.librdkafka()), settings, timeout_s)
    except KafkaException:
        return  # the cluster cannot say: keep the original error
    if missing:
        raise WorkerError(not_authorized(missing))


def check_topics(settings: Settings, timeout_s: float = 30.0, topics: list[str] | None = None) -> None:
    """Fail fast and clearly when the broker is unreachable or a topic is missing.

    ``topics`` defaults to the input, output and dead-letter topics of ``settings``.
    """
    errors: list[KafkaError] = []
    conf: dict[str, Any] = {**settings.librdkafka(), "error_cb": errors.append}
    admin = AdminClient(conf)
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        # the client's own last error says why (authentication, TLS handshake, refused connection)
        admin.poll(0)  # serves the error callbacks queued while list_topics waited
        causes = [e.str() for e in errors if e.code() != KafkaError._ALL_BROKERS_DOWN]
        why = causes[-1] if causes else exc.args[0].str()
        raise WorkerError(
            f"cannot reach Kafka at {conf['bootstrap.servers']} within {timeout_s:.0f}s: {why}"
        ) from None
    if topics is None:
        lacking = missing_rights(admin, settings, timeout_s)
        if lacking:
            raise WorkerError(not_authorized(lacking))
    wanted = [*settings.input_topics, settings.output_topic, settings.dlq_topic] if topics is None else topics
    missing = [t for t in wanted if t not in metadata.topics]
    if missing:
        raise WorkerError(f"topic(s) missing on the broker: {', '.join(missing)}; create them first")


class Watchdog:
    """Ends the process if a batch's delivery outlives every timeout it was given.

    librdkafka can block in a transactional call past its own timeout after a broker outage. By then the
    broker has aborted the transaction, so exiting loses nothing: the restarted worker fences the old
    producer and processes the batch again. Without this, the worker would hang until a liveness probe.

    One thread watches for the worker's whole life, looking at the deadline every ``tick_s``; entering
    and leaving the context only set and clear that deadline: a timer thread per batch would cost a
    thread start per transaction (about 0.2 ms, and a GIL handover to the new thread) on the hot loop.
    """

    def __init__(
        self, limit_s: float, expire: Callable[[float], None] | None = None, tick_s: float = 1.0
    ) -> None:
        self.limit_s = limit_s
        self._expire = expire or _exit_hung
        self._tick_s = min(tick_s, limit_s)
        self._deadline: float | None = None
        self._closed = threading.Event()
        self._pid = -1

    def __enter__(self) -> Watchdog:
        if self._pid != os.getpid() or self._closed.is_set():  # first use, closed, or a forked child
            self._start()
        self._deadline = time.monotonic() + self.limit_s
        return self

    def __exit__(self, *exc: object) -> None:
        self._deadline = None

    def close(self) -> None:
        """Stop watching: the thread ends within ``tick_s`` (entering again starts another)."""
        self._closed.set()

    def _start(self) -> None:
        self._pid = os.getpid()
        self._closed = closed = threading.Event()
        threading.Thread(target=self._watch, args=(closed,), name="watchdog", daemon=True).start()

    def _watch(self, closed: threading.Event) -> None:
        while not closed.wait(self._tick_s):
            deadline = self._deadline
            if deadline is not None and time.monotonic() > deadline:
                closed.set()
                self._expire(self.limit_s)
                return


def _exit_hung(limit_s: float) -> None:
    log.error("delivery_hung", seconds=limit_s)
    print(f"error: a Kafka transaction did not complete within {limit_s:.0f}s; exiting", file=sys.stderr)
    # where it hung (code locations only, no values): the client call that never returned
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    os._exit(3)


class Worker:
    """consume -> pipeline -> produce -> commit, until stopped."""

    def __init__(
        self,
        settings: Settings,
        pipeline: Pipeline,
        observer: Observer | None = None,
        output_key: Callable[[bytes | None], bytes | None] | None = None,
        seal_dead_letter: SealDeadLetter | None = None,
    ) -> None:
        self._settings = settings
        self._output_key = output_key
        self._seal_dead_letter = seal_dead_letter
        self._pipeline = pipeline
        self._observer = observer or NullObserver()
        self._stop = threading.Event()
        # Records the broker refused, to dead-letter when their batch is processed again after the abort.
        self._rejected: dict[SourceKey, str] = {}
        # Records in a produce request the broker refused: each is retried in a transaction of its own.
        self._suspects: set[SourceKey] = set()
        self.source: Source | None = None
        self.delivery: Delivery | None = None
        self._watchdog = Watchdog(2 * settings.transaction_timeout_s + 60)
        self._rights_checked_at = -1e9
        # consecutive batches the schema registry could not serve, and since when (monotonic)
        self._registry_failures = 0
        self._registry_down_since = 0.0

    def stop(self, *_: object) -> None:
        self._stop.set()

    def _forget_revoked(self, partitions: list[TopicPartition]) -> None:
        gone = {(tp.topic, tp.partition) for tp in partitions}
        self._rejected = {k: v for k, v in self._rejected.items() if (k[0], k[1]) not in gone}
        self._suspects = {k for k in self._suspects if (k[0], k[1]) not in gone}

    def run(self, until_idle_s: float | None = None) -> None:
        """Process until stopped; with ``until_idle_s``, also stop after that long without records."""
        s = self._settings
        check_topics(s, timeout_s=s.connect_timeout_s)
        delivery = (ExactlyOnce if s.delivery == "exactly_once" else AtLeastOnce)(s, self._observer)
        if self._output_key is not None:
            delivery.output_key = self._output_key
        delivery.seal_dead_letter = self._seal_dead_letter
        self.delivery = delivery
        self.source = Source(s, self._observer, self._forget_revoked)
        log.info(
            "worker_started", delivery=s.delivery, input_topics=s.input_topics, output_topic=s.output_topic
        )
        # everything built so far (modules, plans, clients) lives as long as the worker
        heap.tune_collector()
        heap.settle()
        last_records = time.monotonic()
        try:
            while not self._stop.is_set():
                if self.source.fatal is not None:
                    if self.source.fatal.code() in AUTHORIZATION_ERRORS:
                        raise WorkerError(refused(s, self.source.fatal.code()))
                    raise WorkerError(f"consumer failed: {self.source.fatal.str()}")
                self._observer.loop()
                t0 = time.perf_counter()
                batch = self.source.poll_batch(s.batch_size, s.poll_timeout_s, s.batch_linger_s)
                if not batch.records:
                    if not self.source.assigned:
                        last_records = time.monotonic()  # idle means assigned and nothing to read
                    elif until_idle_s is not None and time.monotonic() - last_records >= until_idle_s:
                        break
                    continue
                last_records = time.monotonic()
                self._observer.stage("consume", time.perf_counter() - t0)
                self._handle(batch)
        except WriteRefused as exc:
            raise WorkerError(refused(s, exc.code, exc.topic)) from None
        except WorkerError:
            check_rights(s)  # a missing right is the better explanation, when it is the cause
            raise
        except (KafkaException, SystemError) as exc:
            # fatal client errors, such as being fenced by a newer instance with our transactional id;
            # librdkafka may surface one raised inside a callback as a SystemError wrapping it
            cause = exc if isinstance(exc, KafkaException) else exc.__cause__
            if not isinstance(cause, KafkaException):
                raise
            raise WorkerError(f"Kafka client failed: {cause.args[0].str()}") from None
        finally:
            self._close()

    def _handle(self, batch: Batch) -> None:
        assert self.source is not None and self.delivery is not None
        self._observer.consumed(batch.records)
        before = dict(self._pipeline.stage_seconds)
        try:
            outcomes = self._pipeline.process(batch.records)
        except RegistryUnavailable as exc:
            self.source.rewind(batch)
            self._registry_unavailable(exc)
            return
        if self._registry_failures:
            log.info(
                "schema_registry_available",
                attempts=self._registry_failures,
                seconds=round(time.monotonic() - self._registry_down_since, 1),
            )
            self._registry_failures = 0
            self._observer.registry(None)
        for name, total in self._pipeline.stage_seconds.items():
            self._observer.stage(name, total - before[name])
        outcomes = self._apply_rejections(outcomes)
        segments = split_around(batch, outcomes, self._suspects)
        for i, (segment, segment_outcomes) in enumerate(segments):
            if not self._deliver(segment, segment_outcomes):
                # earlier segments are committed; everything from this one on is processed again
                self.source.rewind(merge([seg for seg, _ in segments[i:]]))
                return

    def _registry_unavailable(self, exc: RegistryUnavailable) -> None:
        """Nothing is dead-lettered for the registry's absence: the batch waits, with backoff (0.5 s
        doubling to 30 s), not ready meanwhile, one log line per attempt; it resumes by itself."""
        if not self._registry_failures:
            self._registry_down_since = time.monotonic()
        self._registry_failures += 1
        self._observer.registry(exc)
        delay = min(0.5 * 2 ** (self._registry_failures - 1), 30.0)
        log.warning(
            "schema_registry_unavailable",
            kind=exc.kind.value,
            error=str(exc),
            attempt=self._registry_failures,
            retry_in_s=delay,
        )
        self._stop.wait(delay)

    def _deliver(self, batch: Batch, outcomes: list[Outcome]) -> bool:
        """One transaction: produce the outcomes, commit the batch's offsets. False if it was aborted."""
        assert self.source is not None and self.delivery is not None
        with self._watchdog:
            return self._deliver_once(batch, outcomes)

    def _deliver_once(self, batch: Batch, outcomes: list[Outcome]) -> bool:
        assert self.source is not None and self.delivery is not None
        self.delivery.begin()
        try:
            t0 = time.perf_counter()
            self.delivery.produce(outcomes)
            t1 = time.perf_counter()
            self.delivery.commit(batch, self.source.consumer)
            self._observer.stage("produce", t1 - t0)
            self._observer.stage("commit", time.perf_counter() - t1)
        except BatchAborted as exc:
            self._observer.transaction(False)
            if len(batch.records) == 1 and exc.rejected:
                # alone in its transaction and still refused: this record is the culprit
                self._rejected.update(exc.rejected)
            else:
                # a broker refusal fails a whole produce request: isolate the suspects on the retry
                self._suspects.update(exc.rejected)
            log.warning(
                "batch_aborted", reason=str(exc), records=len(batch.records), suspects=len(exc.rejected)
            )
            if not exc.rejected:
                self._check_rights_now_and_then()  # a revoked right must not look like a transient failure
                time.sleep(0.5)  # a transient failure: do not spin
            return False
        self._suspects.difference_update((r.topic, r.partition, r.offset) for r in batch.records)
        self._observer.transaction(True)
        self._observer.committed(batch.end)
        self._observer.delivered(outcomes, self._settings.output_topic, self._settings.dlq_topic)
        return True

    def _check_rights_now_and_then(self) -> None:
        now = time.monotonic()
        if now - self._rights_checked_at >= 30.0:
            self._rights_checked_at = now
            check_rights(self._settings)

    def _apply_rejections(self, outcomes: list[Outcome]) -> list[Outcome]:
        if not self._rejected:
            return outcomes
        result: list[Outcome] = []
        for o in outcomes:
            src = o.source
            code = self._rejected.pop((src.topic, src.partition, src.offset), None)
            if code is not None and isinstance(o, Sanitized):
                result.append(
                    DeadLetter(
                        src,
                        Reason.PRODUCE_REJECTED,
                        "KafkaError",
                        f"output topic refused the sanitized record: {code}",
                        o.schema_ref,
                    )
                )
            elif code is not None:
                # The dead-letter topic itself refuses the raw record: nothing can take it, so stop loudly.
                raise WorkerError(
                    f"dead-letter topic refused a record ({code}) from "
                    f"{src.topic}[{src.partition}]@{src.offset}; raise its max.message.bytes"
                )
            else:
                result.append(o)
        return result

    def _close(self) -> None:
        try:
            if self.delivery is not None:
                self.delivery.close()
        except (KafkaException, SystemError) as exc:
            log.warning("producer_close_failed", error=str(exc))  # offsets were never committed past it
        if self.source is not None:
            self.source.close()
        self._watchdog.close()
        log.info("worker_stopped")
