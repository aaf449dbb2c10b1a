"""``stream-anon dlq replay``: put selected dead letters back on their source topic, exactly once.

Each batch is one transaction holding the replayed records and the dead-letter topic offsets that led to
them, committed for the replay's own consumer group: a replay stopped anywhere (SIGKILL included) leaves
either the whole batch or nothing, and the next replay with that group resumes after the last committed
batch. A replay reads up to the end the dead-letter topic has when it starts, so records that come back
while it runs wait for the next one.

A replayed record keeps its original key, value (a tombstone stays a tombstone), source partition and
timestamp, and carries ``stream-anon.replay.count``; the worker copies that count onto the record's next
dead letter, and a dead letter already replayed ``dlq_max_replays`` times is held back, not replayed.

The group's committed position means "dealt with": every dead letter before it was replayed, passed over
by the selection (``--reason``, ``--schema``, ``--since``), held back, or skipped with a message. ``--until``
is where a replay stops, so what lies after it stays for a later replay. Records a selective replay passed
over are replayed later only under another ``--group``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient

from stream_anon.config import Settings
from stream_anon.dlq.letter import Letter, Place, Unreadable, read_letter
from stream_anon.dlq.seal import DeadLetterSeal, SealError
from stream_anon.kafka.clients import transactional_producer_config
from stream_anon.kafka.errors import FatalKafkaError
from stream_anon.kafka.reader import TopicReader
from stream_anon.kafka.transactions import TransactionAborted, Transactions
from stream_anon.records import REPLAY_COUNT_HEADER


@dataclass(frozen=True, slots=True)
class Bound:
    """One end of the replayed range: a dead-letter timestamp (ms), or an offset of the dead-letter topic
    in one partition (or in every partition when ``partition`` is None)."""

    time_ms: int | None = None
    offset: int | None = None
    partition: int | None = None

    def below(self, place: Place) -> bool:
        """Whether ``place`` lies before this bound."""
        if self.time_ms is not None:
            return place.timestamp_ms < self.time_ms
        assert self.offset is not None
        return (self.partition is None or self.partition == place.partition) and place.offset < self.offset

    def above(self, place: Place) -> bool:
        """Whether ``place`` lies after this bound (the bound itself is included in the range)."""
        if self.time_ms is not None:
            return place.timestamp_ms > self.time_ms
        assert self.offset is not None
        return (self.partition is None or self.partition == place.partition) and place.offset > self.offset


@dataclass(frozen=True, slots=True)
class Selection:
    """Which dead letters to replay: any of ``reasons`` (all when empty), ``schema``, within the bounds."""

    reasons: frozenset[str] = frozenset()
    schema: str | None = None
    since: Bound | None = None
    until: Bound | None = None


@dataclass(frozen=True, slots=True)
class Write:
    """A record to put back: where, and the original key, value and timestamp."""

    topic: str
    partition: int | None
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    replay_count: int


@dataclass(frozen=True, slots=True)
class Pass:
    """A dead letter this replay leaves alone, and why (``kind``: not_selected, held_back, skipped)."""

    kind: str
    message: str = ""


STOP = "stop"
"""Past ``--until``: the rest of this partition stays for a later replay."""


class Planner:
    """What a replay does with each record: a ``Write``, a ``Pass`` or ``STOP``. No Kafka in here."""

    def __init__(
        self,
        selection: Selection,
        seal: DeadLetterSeal,
        max_replays: int,
        source_partitions: dict[str, int],
    ) -> None:
        self.selection = selection
        self.seal = seal
        self.max_replays = max_replays
        # The input topics the worker reads, with their partition counts: the only replay targets.
        self.source_partitions = source_partitions

    def plan(self, record: Letter | Unreadable) -> Write | Pass | str:
        s = self.selection
        if s.until is not None and s.until.above(record.place):
            return STOP
        if isinstance(record, Unreadable):
            return Pass("skipped", record.problem)
        if s.since is not None and s.since.below(record.place):
            return Pass("not_selected")
        if (s.reasons and record.reason not in s.reasons) or (
            s.schema is not None and record.schema != s.schema
        ):
            return Pass("not_selected")
        if record.replays >= self.max_replays:
            return Pass("held_back", f"replayed {record.replays} time(s) already (dlq_max_replays)")
        partitions = self.source_partitions.get(record.source_topic)
        if partitions is None:
            return Pass(
                "skipped", f"source topic {record.source_topic} is not one of the worker's input topics"
            )
        try:
            key, value = self.seal.open(record)
        except SealError as exc:
            return Pass("skipped", str(exc))
        # the source partition keeps the record's order among its key's records, if the topic still has it
        partition = record.source_partition if 0 <= record.source_partition < partitions else None
        return Write(
            record.source_topic, partition, key, value, record.source_timestamp_ms, record.replays + 1
        )


@dataclass(slots=True)
class ReplayReport:
    """What a replay did (or, dry, would do)."""

    scanned: int = 0
    replayed: Counter[str] = field(default_factory=Counter)
    passed: Counter[str] = field(default_factory=Counter)
    stopped_partitions: set[int] = field(default_factory=set)
    messages: list[str] = field(default_factory=list)
    complete: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "scanned": self.scanned,
            "replayed": dict(sorted(self.replayed.items())),
            "replayed_total": sum(self.replayed.values()),
            "not_selected": self.passed["not_selected"],
            "held_back": self.passed["held_back"],
            "skipped": self.passed["skipped"],
            "stopped_at_until": sorted(self.stopped_partitions),
            "messages": self.messages,
            "complete": self.complete,
        }


class ReplayFailed(Exception):
    """The replay stopped; committed batches stay replayed and the next run resumes after them."""


def replay_group(settings: Settings) -> str:
    return f"{settings.group_id}-dlq-replay"


def source_partitions(settings: Settings, timeout_s: float) -> dict[str, int]:
    """Partition counts of the worker's input topics that exist (the replay's possible targets)."""
    try:
        metadata = AdminClient(settings.librdkafka()).list_topics(timeout=timeout_s)
    except Exception as exc:
        raise FatalKafkaError(f"cannot reach Kafka at {settings.bootstrap_servers}: {exc}") from None
    return {t: len(metadata.topics[t].partitions) for t in settings.input_topics if t in metadata.topics}


def replay(
    settings: Settings,
    planner: Planner,
    *,
    group: str,
    dry_run: bool = False,
    on_record: Callable[[Letter | Unreadable, Write | Pass | str], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> ReplayReport:
    """Replay the dead-letter topic from ``group``'s committed position to its end offsets now.

    ``dry_run`` writes and commits nothing (and creates no transactional producer, so a replay running
    elsewhere is not fenced). ``on_record`` sees each record and what was decided for it.
    """
    report = ReplayReport()
    producer: Producer | None = None
    transactions: Transactions | None = None
    if not dry_run:
        producer = Producer(transactional_producer_config(settings, group))
        # Before reading the committed position: fences a replay killed mid-batch and aborts its
        # transaction, so the position read next is the last committed batch's.
        transactions = Transactions(producer, settings.shutdown_timeout_s)
    with TopicReader(
        settings.librdkafka(), settings.dlq_topic, purpose="dlq-replay", group_id=group
    ) as reader:
        if on_total is not None:
            on_total(reader.total)
        for batch in _batches(reader, settings.batch_size):
            offsets: dict[tuple[str, int], int] = {}
            writes: list[Write] = []
            for message in batch:
                record = read_letter(message)
                report.scanned += 1
                place = record.place
                if place.partition in report.stopped_partitions:
                    continue
                decided = planner.plan(record)
                if on_record is not None:
                    on_record(record, decided)
                if decided == STOP:
                    report.stopped_partitions.add(place.partition)
                    continue
                offsets[(settings.dlq_topic, place.partition)] = place.offset + 1
                if isinstance(decided, Write):
                    writes.append(decided)
                    report.replayed[decided.topic] += 1
                elif isinstance(decided, Pass):
                    report.passed[decided.kind] += 1
                    if decided.message:
                        report.messages.append(
                            f"partition {place.partition} offset {place.offset}: {decided.message}"
                        )
            if producer is not None and transactions is not None and offsets:
                _commit_batch(producer, transactions, writes, offsets, reader.group_metadata(), settings)
        report.complete = reader.complete
    return report


def _batches(messages: Iterable[Message], size: int) -> Iterator[list[Message]]:
    batch: list[Message] = []
    for message in messages:
        batch.append(message)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _commit_batch(
    producer: Producer,
    transactions: Transactions,
    writes: list[Write],
    offsets: dict[tuple[str, int], int],
    group_metadata: Any,
    settings: Settings,
) -> None:
    """One transaction: the batch's writes and the dead-letter offsets past it, or neither."""
    failed: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            failed.append(err)

    transactions.begin()
    try:
        for w in writes:
            extra: dict[str, Any] = {} if w.partition is None else {"partition": w.partition}
            if w.timestamp_ms >= 0:
                extra["timestamp"] = w.timestamp_ms
            headers: list[tuple[str, str | bytes | None]] = [
                (REPLAY_COUNT_HEADER, str(w.replay_count).encode())
            ]
            while True:
                try:
                    producer.produce(
                        w.topic, w.value, w.key, headers=headers, on_delivery=on_delivery, **extra
                    )
                    break
                except BufferError:
                    producer.poll(0.05)  # local queue full: let deliveries drain
        producer.flush(settings.shutdown_timeout_s)
        if failed:
            codes = ", ".join(sorted({e.name() for e in failed}))
            raise TransactionAborted(f"{len(failed)} write(s) failed: {codes}")
        transactions.commit(offsets, group_metadata)
    except TransactionAborted as exc:
        transactions.abort()
        raise ReplayFailed(f"{exc}; this batch was not replayed, run the replay again to resume") from None
    except KafkaException as exc:  # fenced by another replay with this group, the broker gone, ...
        raise ReplayFailed(
            f"Kafka client failed: {exc.args[0].str()}; the open batch is aborted by the broker, "
            "run the replay again to resume"
        ) from None
