"""The worker's loop and commit strategies with an in-memory broker: batch arithmetic, not Kafka.

What is proved here: every record's outcome is written once per committed transaction and its offset
committed with it; a refused write isolates its produce request's records and dead-letters the one the
topic refuses alone; an aborted transaction is processed again; failed writes are tied to the records
that made them. The same behaviour against the real broker: tests/broker/test_exactly_once.py,
test_dead_letters.py, tests/faults.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka import KafkaError
from fakekafka import FakeProducer, FakeSource, InMemoryBroker

from stream_anon.config import Settings
from stream_anon.kafka.batch import Batch, batch_of, merge, split_around
from stream_anon.kafka.delivery import AtLeastOnce, Delivery, ExactlyOnce, OutputKey
from stream_anon.kafka.errors import BatchAborted, FatalKafkaError, Fenced
from stream_anon.kafka.protocols import BatchSource, NullObserver, Observer
from stream_anon.kafka.writes import OutcomeWriter, SealDeadLetter
from stream_anon.records import DeadLetter, InputRecord, Outcome, Reason, Sanitized
from stream_anon.worker import Worker

IN, OUT, DLQ = "raw", "sanitized", "dlq"


class Uppercase:
    """A pipeline stand-in: sanitizes by upper-casing; a value starting with ``bad`` is dead-lettered."""

    def __init__(self) -> None:
        self.stage_seconds: dict[str, float] = {}

    def process(self, records: list[InputRecord]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for r in records:
            value = r.value or b""
            if value.startswith(b"bad"):
                outcomes.append(DeadLetter(r, Reason.UNDECODABLE, "ValueError", "bad record"))
            else:
                outcomes.append(Sanitized(r, value.upper(), "test:1"))
        return outcomes


class Transactions(NullObserver):
    """Counts the transactions the loop reports committed and aborted."""

    def __init__(self) -> None:
        self.done = 0
        self.aborted = 0

    def transaction(self, committed: bool) -> None:
        if committed:
            self.done += 1
        else:
            self.aborted += 1


def settings(delivery: str = "exactly_once", batch_size: int = 10) -> Settings:
    return Settings(
        input_topics=[IN],
        output_topic=OUT,
        dlq_topic=DLQ,
        delivery=delivery,  # type: ignore[arg-type]
        batch_size=batch_size,
        transactional_id="unit",
    )


def no_check(settings: Settings) -> None:
    """The cluster's ACLs are not asked: there is no cluster here."""


def broker_with(values: list[bytes], partitions: int = 2) -> InMemoryBroker:
    broker = InMemoryBroker()
    for i, value in enumerate(values):
        broker.append(IN, i % partitions, f"k{i}".encode(), value)
    return broker


def run(
    broker: InMemoryBroker,
    producer: FakeProducer,
    delivery: str = "exactly_once",
    observer: Observer | None = None,
    batch_size: int = 10,
) -> FakeSource:
    source = FakeSource(broker)

    def open_clients(
        s: Settings,
        obs: Observer,
        on_revoke: Callable[[list[tuple[str, int]]], None],
        key: OutputKey | None,
        seal: SealDeadLetter | None,
    ) -> tuple[BatchSource, Delivery]:
        strategy = ExactlyOnce if delivery == "exactly_once" else AtLeastOnce
        return source, strategy(producer, OUT, DLQ, 1.0, key, seal)

    worker = Worker(
        settings(delivery, batch_size),
        Uppercase(),
        observer,
        open_clients=open_clients,
        check_rights=no_check,
    )
    worker.run(until_idle_s=0.05)
    assert source.closed
    return source


def sources(broker: InMemoryBroker, topic: str) -> list[tuple[int, int]]:
    """(partition, offset) of the input record behind each record written to ``topic``, in order."""
    return [
        (int(w.headers["stream-anon.source.partition"]), int(w.headers["stream-anon.source.offset"]))
        for w in broker.written(topic)
    ]


def every_input(broker: InMemoryBroker, where: Callable[[bytes], bool]) -> list[tuple[int, int]]:
    return sorted(
        (r.partition, r.offset) for log in broker.inputs.values() for r in log if where(r.value or b"")
    )


def refuse_on(topic: str, value: bytes) -> Callable[[str, bytes | None], KafkaError | None]:
    """The broker refuses ``value`` on ``topic`` as too large (a permanent error)."""
    return lambda t, v: KafkaError(KafkaError.MSG_SIZE_TOO_LARGE) if (t, v) == (topic, value) else None


# --- split_around ---------------------------------------------------------------------------------


def records(n: int, partition: int = 0) -> list[InputRecord]:
    return [InputRecord(IN, partition, i, 0, None, f"v{i}".encode()) for i in range(n)]


def test_without_suspects_the_batch_is_one_segment() -> None:
    batch = batch_of(records(4))
    outcomes: list[Outcome] = [Sanitized(r, b"x", "s") for r in batch.records]
    assert split_around(batch, outcomes, set()) == [(batch, outcomes)]
    assert split_around(batch, outcomes, {(IN, 1, 2)}) == [(batch, outcomes)]  # a suspect of another batch


def test_each_suspect_travels_alone_and_the_runs_between_keep_their_offsets() -> None:
    batch = batch_of(records(6))
    outcomes: list[Outcome] = [Sanitized(r, str(r.offset).encode(), "s") for r in batch.records]
    segments = split_around(batch, outcomes, {(IN, 0, 2), (IN, 0, 3)})
    assert [[r.offset for r in seg.records] for seg, _ in segments] == [[0, 1], [2], [3], [4, 5]]
    assert [[o.source.offset for o in outs] for _, outs in segments] == [[0, 1], [2], [3], [4, 5]]
    assert [(seg.start, seg.end) for seg, _ in segments] == [
        ({(IN, 0): 0}, {(IN, 0): 2}),
        ({(IN, 0): 2}, {(IN, 0): 3}),
        ({(IN, 0): 3}, {(IN, 0): 4}),
        ({(IN, 0): 4}, {(IN, 0): 6}),
    ]
    assert merge([seg for seg, _ in segments[1:]]).start == {(IN, 0): 2}


def test_a_batch_spans_partitions_with_its_own_offsets_for_each() -> None:
    batch = batch_of([*records(3, partition=0), *records(2, partition=1)])
    assert batch.start == {(IN, 0): 0, (IN, 1): 0}
    assert batch.end == {(IN, 0): 3, (IN, 1): 2}
    assert isinstance(batch, Batch)


# --- the loop, exactly once --------------------------------------------------------------------------


def test_every_record_is_written_once_with_its_offset_committed() -> None:
    values = [b"bad-0" if i == 4 else f"r{i}".encode() for i in range(25)]
    broker = broker_with(values)
    observer = Transactions()
    run(broker, FakeProducer(broker), observer=observer)
    assert sorted(sources(broker, OUT)) == every_input(broker, lambda v: not v.startswith(b"bad"))
    assert [w.value for w in broker.written(DLQ)] == [b"bad-0"]  # the raw bytes, with the reason
    assert broker.written(DLQ)[0].headers["stream-anon.reason"] == b"undecodable"
    assert broker.committed == {(IN, 0): 13, (IN, 1): 12}
    assert observer.done == 3 and observer.aborted == 0  # 25 records in batches of 10


def test_a_refused_write_isolates_its_request_and_dead_letters_only_the_culprit() -> None:
    values = [f"r{i}".encode() for i in range(10)]
    broker = broker_with(values, partitions=1)
    producer = FakeProducer(broker, refuse_on(OUT, b"R7"))
    observer = Transactions()
    source = run(broker, producer, observer=observer)
    # the first transaction failed as a whole; each record then went alone; r7 alone was refused again
    assert observer.aborted == 2
    assert sorted(sources(broker, OUT)) == [(0, i) for i in range(10) if i != 7]
    dead = broker.written(DLQ)
    assert [w.value for w in dead] == [b"r7"]
    assert dead[0].headers["stream-anon.reason"] == b"produce_rejected"
    assert b"MSG_SIZE_TOO_LARGE" in dead[0].headers["stream-anon.error.message"]
    assert broker.committed == {(IN, 0): 10}
    assert source.rewinds == [{(IN, 0): 0}, {(IN, 0): 7}]  # the batch, then from the culprit on


def test_a_record_the_dead_letter_topic_refuses_stops_the_worker() -> None:
    broker = broker_with([b"ok", b"bad-too-large"], partitions=1)
    producer = FakeProducer(broker, refuse_on(DLQ, b"bad-too-large"))
    with pytest.raises(FatalKafkaError, match=r"dead-letter topic refused a record .* raw\[0\]@1"):
        run(broker, producer)
    # the good record went alone once its request mate was suspect; the refused one is never committed
    assert sources(broker, OUT) == [(0, 0)]
    assert broker.written(DLQ) == []
    assert broker.committed == {(IN, 0): 1}


def test_a_transaction_the_broker_aborts_is_processed_again_and_written_once() -> None:
    broker = broker_with([f"r{i}".encode() for i in range(5)], partitions=1)
    producer = FakeProducer(broker)
    producer.commit_errors = [KafkaError(KafkaError._FENCED, "abortable", txn_requires_abort=True)]
    observer = Transactions()
    run(broker, producer, observer=observer)
    assert observer.aborted == 1 and observer.done == 1
    assert sources(broker, OUT) == [(0, i) for i in range(5)]
    assert producer.calls == ["init", "begin", "abort", "begin", "commit"]


# send_offsets_to_transaction's time-out is what a worker paused past the call's timeout meets first
@pytest.mark.parametrize("call", ["commit_errors", "offsets_errors"])
def test_a_retriable_transaction_error_is_retried_without_aborting(call: str) -> None:
    broker = broker_with([b"a", b"b"], partitions=1)
    producer = FakeProducer(broker)
    setattr(producer, call, [KafkaError(KafkaError._TIMED_OUT, "Local: Timed out", retriable=True)])
    observer = Transactions()
    run(broker, producer, observer=observer)
    assert observer.aborted == 0 and not getattr(producer, call)
    assert sources(broker, OUT) == [(0, 0), (0, 1)] and broker.committed


def test_a_fatal_commit_error_stops_the_worker_with_its_message() -> None:
    broker = broker_with([b"a"], partitions=1)
    producer = FakeProducer(broker)
    producer.commit_errors = [KafkaError(KafkaError._FENCED, "fenced by a newer instance", fatal=True)]
    with pytest.raises(FatalKafkaError, match="transaction failed: fenced by a newer instance"):
        run(broker, producer)
    assert broker.written(OUT) == [] and broker.committed == {}


@pytest.mark.parametrize(
    "code",
    [KafkaError._FENCED, KafkaError.INVALID_PRODUCER_EPOCH, KafkaError.PRODUCER_FENCED],
    ids=["librdkafka", "old-epoch", "producer-fenced"],
)
def test_a_fenced_commit_stops_the_worker_as_fenced_so_that_it_is_restarted(code: int) -> None:
    # INVALID_PRODUCER_EPOCH is what a three-node cluster returned in a rolling restart, with no second
    # instance anywhere: the broker had ended the transaction itself
    broker = broker_with([b"a"], partitions=1)
    producer = FakeProducer(broker)
    producer.commit_errors = [KafkaError(code, "old epoch", fatal=True)]
    with pytest.raises(Fenced, match="transaction failed: old epoch"):
        run(broker, producer)
    assert broker.written(OUT) == [] and broker.committed == {}


def test_a_fatal_error_that_is_not_fencing_is_not_reported_as_fenced() -> None:
    broker = broker_with([b"a"], partitions=1)
    producer = FakeProducer(broker)
    producer.commit_errors = [KafkaError(KafkaError._INCONSISTENT, "inconsistent state", fatal=True)]
    with pytest.raises(FatalKafkaError, match="transaction failed: inconsistent state") as raised:
        run(broker, producer)
    assert not isinstance(raised.value, Fenced)


def test_a_producer_fenced_in_a_write_is_reported_as_fenced() -> None:
    # the failed write aborts the batch, and a fenced producer cannot even abort
    broker = broker_with([b"a"], partitions=1)
    producer = FakeProducer(broker)
    producer.produce_errors = [KafkaError(KafkaError._FENCED, "fenced in produce", fatal=True)]
    with pytest.raises(Fenced, match="cannot abort the transaction: fenced in produce"):
        run(broker, producer)
    assert broker.written(OUT) == [] and broker.committed == {}


def test_a_producer_found_fenced_when_a_transaction_begins_is_reported_as_fenced() -> None:
    broker = broker_with([b"a"], partitions=1)
    producer = FakeProducer(broker)
    producer.fatal = KafkaError(KafkaError._FENCED, "fenced before begin", fatal=True)
    with pytest.raises(Fenced, match="Kafka client failed: fenced before begin"):
        run(broker, producer)
    assert broker.written(OUT) == [] and broker.committed == {}


def test_the_output_key_function_keys_sanitized_records_and_dead_letters_keep_theirs() -> None:
    broker = broker_with([b"a", b"bad"], partitions=1)
    source = FakeSource(broker)
    producer = FakeProducer(broker)
    delivery = ExactlyOnce(producer, OUT, DLQ, 1.0, output_key=lambda key: b"pseudo-" + (key or b""))
    worker = Worker(
        settings(), Uppercase(), open_clients=lambda *_: (source, delivery), check_rights=no_check
    )
    worker.run(until_idle_s=0.05)
    assert [w.key for w in broker.written(OUT)] == [b"pseudo-k0"]
    assert [w.key for w in broker.written(DLQ)] == [b"k1"]


# --- the loop, at least once ---------------------------------------------------------------------------


def test_at_least_once_commits_after_the_writes_and_rewrites_a_failed_batch() -> None:
    broker = broker_with([f"r{i}".encode() for i in range(4)], partitions=1)
    failures = [KafkaError(KafkaError._MSG_TIMED_OUT)]  # the first flush's writes time out, once

    def flaky(topic: str, value: bytes | None) -> KafkaError | None:
        return failures.pop() if failures and topic == OUT else None

    producer = FakeProducer(broker, flaky)
    observer = Transactions()
    run(broker, producer, delivery="at_least_once", observer=observer)
    assert observer.aborted == 1
    assert sorted(set(sources(broker, OUT))) == [(0, i) for i in range(4)]
    assert broker.committed == {(IN, 0): 4}


# --- matching failed writes ---------------------------------------------------------------------------


def test_failed_writes_are_tied_to_every_record_that_wrote_those_bytes_there() -> None:
    broker = InMemoryBroker()
    producer = FakeProducer(broker, refuse_on(OUT, b"SAME"))
    writer = OutcomeWriter(producer, OUT, DLQ)
    recs = records(3)
    writer.reset()
    writer.produce([Sanitized(recs[0], b"SAME", "s"), Sanitized(recs[1], b"SAME", "s")])
    writer.produce([DeadLetter(recs[2], Reason.UNDECODABLE, "E", "m")])
    producer.flush()
    with pytest.raises(BatchAborted) as aborted:
        writer.check_failures()
    # both records wrote the refused bytes to the refused topic; the dead letter went elsewhere
    assert aborted.value.rejected == {(IN, 0, 0): "MSG_SIZE_TOO_LARGE", (IN, 0, 1): "MSG_SIZE_TOO_LARGE"}
    writer.check_failures()  # checked once: the next batch starts clean


def test_a_transient_write_failure_aborts_without_naming_records() -> None:
    broker = InMemoryBroker()
    producer = FakeProducer(broker, lambda t, v: KafkaError(KafkaError._MSG_TIMED_OUT))
    writer = OutcomeWriter(producer, OUT, DLQ)
    writer.produce([Sanitized(records(1)[0], b"x", "s")])
    producer.flush()
    with pytest.raises(BatchAborted, match="_MSG_TIMED_OUT") as aborted:
        writer.check_failures()
    assert aborted.value.rejected == {}


def test_a_write_refused_for_want_of_a_right_stops_the_worker_naming_the_right() -> None:
    broker = broker_with([b"a"], partitions=1)
    producer = FakeProducer(broker, lambda t, v: KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))
    with pytest.raises(FatalKafkaError, match=f"not authorized: the worker needs WRITE on TOPIC '{OUT}'"):
        run(broker, producer)
    assert broker.written(OUT) == [] and broker.committed == {}  # nothing retried, nothing committed
