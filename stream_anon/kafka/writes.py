"""Writing a batch's outcomes, and tying the writes the broker refused back to the records that made them.

Sanitized records go to the output topic with lineage headers (which input record each one is), dead
letters to the dead-letter topic with their raw bytes and reason headers. Failed writes are matched to
their source records after the flush, by what was written where; a permanent refusal (the record
itself is unacceptable to the topic) names the records for the retry.
"""

from __future__ import annotations

from collections.abc import Callable

from confluent_kafka import KafkaError, KafkaException, Message

from stream_anon.acls import AUTHORIZATION_ERRORS
from stream_anon.kafka.batch import SourceKey
from stream_anon.kafka.errors import BatchAborted, WriteRefused
from stream_anon.kafka.protocols import Headers, ProducerClient
from stream_anon.records import HEADER_PREFIX, DeadLetter, Outcome, Sanitized

# Broker verdicts that will not change on retry: the record itself is unacceptable to the topic.
PERMANENT_PRODUCE_ERRORS = {
    KafkaError.MSG_SIZE_TOO_LARGE,
    KafkaError.RECORD_LIST_TOO_LARGE,
    KafkaError.INVALID_RECORD,
    KafkaError.INVALID_MSG,
    KafkaError.INVALID_MSG_SIZE,
}

SOURCE_TOPIC = HEADER_PREFIX + "source.topic"
SOURCE_PARTITION = HEADER_PREFIX + "source.partition"
SOURCE_OFFSET = HEADER_PREFIX + "source.offset"

SealDeadLetter = Callable[[DeadLetter], tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]]
"""A dead letter's key, value and headers as written sealed at rest (``stream_anon.dlq.seal``)."""


class OutcomeWriter:
    """Writes outcomes through a producer, for both commit strategies: sanitized to the output, the rest
    to the dead-letter topic. One batch at a time: ``reset`` at its start, ``check_failures`` after its
    flush."""

    def __init__(
        self,
        producer: ProducerClient,
        output_topic: str,
        dlq_topic: str,
        output_key: Callable[[bytes | None], bytes | None] | None = None,
        seal_dead_letter: SealDeadLetter | None = None,
    ) -> None:
        self.producer = producer
        self.output_key: Callable[[bytes | None], bytes | None] = output_key or (lambda key: key)
        # Seals a dead letter's key and value at rest, when the keys file says so.
        self.seal_dead_letter = seal_dead_letter
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
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers | None, source: SourceKey
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
                lineage: Headers = [
                    (SOURCE_TOPIC, src.topic.encode()),
                    (SOURCE_PARTITION, str(src.partition).encode()),
                    (SOURCE_OFFSET, str(src.offset).encode()),
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
        """After a flush: any failed write aborts the batch; permanent rejections are named for the retry;
        a write refused for want of a right stops the worker (``WriteRefused``)."""
        self._refusals = [u for u in self._undelivered if u[0].code() in AUTHORIZATION_ERRORS]
        if self._undelivered:
            self._resolve_undelivered()
        if not self.failures:
            return
        for err, topic, _ in self._refusals:
            raise WriteRefused(err.code(), topic)
        failures, self.failures = self.failures, {}
        rejected = {k: e.name() for k, e in failures.items() if e.code() in PERMANENT_PRODUCE_ERRORS}
        codes = sorted({e.name() for e in failures.values()})
        raise BatchAborted(f"{len(failures)} write(s) failed: {', '.join(codes)}", rejected)
