"""The worker's loop: consume a batch, run the pipeline, produce, commit; until stopped.

The loop sees Kafka through two narrow interfaces (``stream_anon.kafka``): a ``BatchSource`` (batches
of input records, rewinding) and a commit strategy (``Delivery``: exactly-once or at-least-once). Its
own concern is the batch arithmetic around failures: a broker refusal fails a whole produce request,
so the records it names are retried each in a transaction of its own, and a record refused alone is
dead-lettered (or, if even the dead-letter topic refuses it, the worker stops).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

import structlog
from confluent_kafka import KafkaException

from stream_anon import heap
from stream_anon.acls import AUTHORIZATION_ERRORS, refused
from stream_anon.config import Settings
from stream_anon.kafka.batch import Batch, SourceKey, merge, split_around
from stream_anon.kafka.clients import check_rights
from stream_anon.kafka.delivery import Delivery, OutputKey, open_clients
from stream_anon.kafka.errors import (
    BatchAborted,
    FatalKafkaError,
    Fenced,
    NotAuthorized,
    WriteRefused,
    client_failure,
)
from stream_anon.kafka.protocols import BatchSource, NullObserver, Observer
from stream_anon.kafka.watchdog import Watchdog
from stream_anon.kafka.writes import SealDeadLetter
from stream_anon.records import DeadLetter, InputRecord, Outcome, Reason, Sanitized
from stream_anon.registry import RegistryUnavailable

log = structlog.get_logger(__name__)


class Processor(Protocol):
    """The pipeline as the loop uses it: outcomes for a batch, and its stage clocks."""

    @property
    def stage_seconds(self) -> dict[str, float]: ...

    def process(self, records: list[InputRecord]) -> list[Outcome]: ...


class OpenClients(Protocol):
    """Builds the loop's source and commit strategy (``kafka.delivery.open_clients``)."""

    def __call__(
        self,
        settings: Settings,
        observer: Observer,
        on_revoke: Callable[[list[tuple[str, int]]], None],
        output_key: OutputKey | None,
        seal_dead_letter: SealDeadLetter | None,
    ) -> tuple[BatchSource, Delivery]: ...


class Worker:
    """consume -> pipeline -> produce -> commit, until stopped.

    ``open_clients`` builds the source and the commit strategy when ``run`` starts, and
    ``check_rights`` names a right the worker lacks after a failure that does not say why (the Kafka
    clients and the cluster's ACLs by default; in-memory fakes in the unit tests).
    """

    def __init__(
        self,
        settings: Settings,
        pipeline: Processor,
        observer: Observer | None = None,
        output_key: OutputKey | None = None,
        seal_dead_letter: SealDeadLetter | None = None,
        open_clients: OpenClients = open_clients,
        check_rights: Callable[[Settings], None] = check_rights,
    ) -> None:
        self._settings = settings
        self._output_key = output_key
        self._seal_dead_letter = seal_dead_letter
        self._check_rights = check_rights
        self._pipeline = pipeline
        self._observer = observer or NullObserver()
        self._open_clients = open_clients
        self._stop = threading.Event()
        # Records the broker refused, to dead-letter when their batch is processed again after the abort.
        self._rejected: dict[SourceKey, str] = {}
        # Records in a produce request the broker refused: each is retried in a transaction of its own.
        self._suspects: set[SourceKey] = set()
        self.source: BatchSource | None = None
        self.delivery: Delivery | None = None
        self._watchdog = Watchdog(2 * settings.transaction_timeout_s + 60)
        self._rights_checked_at = -1e9
        # consecutive batches the schema registry could not serve, and since when (monotonic)
        self._registry_failures = 0
        self._registry_down_since = 0.0

    def stop(self, *_: object) -> None:
        self._stop.set()

    def _forget_revoked(self, partitions: list[tuple[str, int]]) -> None:
        gone = set(partitions)
        self._rejected = {k: v for k, v in self._rejected.items() if (k[0], k[1]) not in gone}
        self._suspects = {k for k in self._suspects if (k[0], k[1]) not in gone}

    def run(self, until_idle_s: float | None = None) -> None:
        """Process until stopped; with ``until_idle_s``, also stop after that long without records."""
        s = self._settings
        try:
            self.source, self.delivery = self._open_clients(
                s, self._observer, self._forget_revoked, self._output_key, self._seal_dead_letter
            )
        except NotAuthorized as exc:
            raise FatalKafkaError(refused(s, exc.code, exc.topic)) from None
        log.info(
            "worker_started", delivery=s.delivery, input_topics=s.input_topics, output_topic=s.output_topic
        )
        # everything built so far (modules, plans, clients) lives as long as the worker
        heap.tune_collector()
        heap.settle()
        try:
            self._loop(self.source, until_idle_s)
        except NotAuthorized as exc:
            if not isinstance(exc, WriteRefused):  # a refused write names its right; others may not
                self._check_rights(s)
            raise FatalKafkaError(refused(s, exc.code, exc.topic)) from None
        except Fenced:
            raise  # a restart is the remedy; the rights are not the cause
        except FatalKafkaError:
            self._check_rights(s)  # a missing right is the better explanation, when it is the cause
            raise
        except (KafkaException, SystemError) as exc:
            # fatal client errors, such as being fenced outside a commit (in produce or begin);
            # librdkafka may surface one raised inside a callback as a SystemError wrapping it
            cause = exc if isinstance(exc, KafkaException) else exc.__cause__
            if not isinstance(cause, KafkaException):
                raise
            raise client_failure(cause.args[0], "Kafka client failed") from None
        finally:
            self._close()

    def _loop(self, source: BatchSource, until_idle_s: float | None) -> None:
        s = self._settings
        last_records = time.monotonic()
        while not self._stop.is_set():
            if source.fatal is not None:
                if source.fatal.code() in AUTHORIZATION_ERRORS:
                    raise NotAuthorized(source.fatal.code())
                raise FatalKafkaError(f"consumer failed: {source.fatal.str()}")
            self._observer.loop()
            t0 = time.perf_counter()
            batch = source.poll_batch(s.batch_size, s.poll_timeout_s, s.batch_linger_s)
            if not batch.records:
                if not source.assigned:
                    last_records = time.monotonic()  # idle means assigned and nothing to read
                elif until_idle_s is not None and time.monotonic() - last_records >= until_idle_s:
                    break
                continue
            last_records = time.monotonic()
            self._observer.stage("consume", time.perf_counter() - t0)
            self._handle(batch)

    def _handle(self, batch: Batch) -> None:
        assert self.source is not None
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
        with self._watchdog:
            return self._deliver_once(batch, outcomes)

    def _deliver_once(self, batch: Batch, outcomes: list[Outcome]) -> bool:
        assert self.source is not None and self.delivery is not None
        self.delivery.begin()
        try:
            t0 = time.perf_counter()
            self.delivery.produce(outcomes)
            t1 = time.perf_counter()
            self.delivery.commit(batch, self.source)
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
            self._check_rights(self._settings)

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
                raise FatalKafkaError(
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
