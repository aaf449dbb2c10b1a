"""Prometheus metrics: what the worker did, how fast, and how far behind it is.

Every metric lives in the ``Metrics`` object's own ``CollectorRegistry`` (tests make fresh ones) and is
documented in docs/metrics.md. Labels are bounded: topics and field paths come from the configuration and
the schemas, reasons and stages from fixed lists, entities from the detectors' list; never a record value.
"""

from __future__ import annotations

import json
import platform
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, ProcessCollector

from stream_anon import __version__
from stream_anon.records import Reason


class Stage(StrEnum):
    """The stages of the per-batch path timed by ``stream_anon_stage_duration_seconds``."""

    CONSUME = "consume"
    DECODE = "decode"
    TRANSFORM = "transform"
    VERIFY = "verify"
    ENCODE = "encode"
    PRODUCE = "produce"
    COMMIT = "commit"


class TransactionOutcome(StrEnum):
    COMMITTED = "committed"
    ABORTED = "aborted"


# Seconds: a batch stage takes from tens of microseconds (verify of a small batch) to seconds (a commit
# waiting on a slow broker).
STAGE_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
)
BATCH_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 100000)
# Seconds from the record's timestamp to its sanitized copy being produced: sub-second when keeping up,
# hours after an outage.
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400)


class Metrics:
    """The worker's metrics and the small methods it calls to update them."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self._consumed = Counter(
            "stream_anon_records_consumed", "Records read from the input topics.", ["topic"], registry=r
        )
        self._produced = Counter(
            "stream_anon_records_produced",
            "Sanitized records written to the output topic.",
            ["topic"],
            registry=r,
        )
        self._dead_lettered = Counter(
            "stream_anon_records_dead_lettered",
            "Records sent to the dead-letter topic, by source topic and reason.",
            ["topic", "reason"],
            registry=r,
        )
        self._leaks = Counter(
            "stream_anon_leaks_detected",
            "PII found by the verifier in sanitized records, by entity and field path.",
            ["entity", "path"],
            registry=r,
        )
        self._scan_entities = Counter(
            "stream_anon_scan_entities",
            "PII entities found and replaced in free text by the scan rule, by entity.",
            ["entity"],
            registry=r,
        )
        self._stage = Histogram(
            "stream_anon_stage_duration_seconds",
            "Seconds spent in each stage of processing a batch.",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self._batch = Histogram(
            "stream_anon_batch_size_records",
            "Records per consumed batch.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self._lag = Histogram(
            "stream_anon_end_to_end_lag_seconds",
            "Seconds from a record's timestamp to its sanitized copy (or dead letter) being produced.",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self._consumer_lag = Gauge(
            "stream_anon_consumer_lag_records",
            "Records between the group's committed offset and the partition's end (high watermark), as "
            "Kafka's consumer group command shows it.",
            ["topic", "partition"],
            registry=r,
        )
        self._assigned = Gauge(
            "stream_anon_assigned_partitions", "Input partitions assigned to this worker.", registry=r
        )
        self._transactions = Counter(
            "stream_anon_transactions",
            "Kafka transactions ended, by outcome (committed or aborted).",
            ["outcome"],
            registry=r,
        )
        self._registry_errors = Counter(
            "stream_anon_registry_errors",
            "Schema Registry failures by kind: unavailable or misconfigured (one per batch attempt that "
            "waited for it), derived_schema_rejected (one per refusal of a derived schema).",
            ["kind"],
            registry=r,
        )
        self._registry_available = Gauge(
            "stream_anon_registry_available",
            "1 while the schema registry answers (or none is configured), 0 while records wait for it.",
            registry=r,
        )
        self._registry_available.set(1)
        self._plans = Counter(
            "stream_anon_plans_compiled", "Rule plans compiled from writer schemas.", registry=r
        )
        self._last_batch = Gauge(
            "stream_anon_last_batch_timestamp_seconds",
            "Unix time at which the last batch finished processing.",
            registry=r,
        )
        self._build = Info(
            "stream_anon_build", "Version of stream-anon and of the Python runtime.", registry=r
        )
        self._build.info({"version": __version__, "python": platform.python_version()})
        ProcessCollector(registry=r)
        for outcome in TransactionOutcome:
            self._transactions.labels(outcome.value)
        # Partitions reported by the last statistics callback, to drop the ones no longer assigned.
        self._lag_partitions: set[tuple[str, str]] = set()
        # Offsets the worker committed, per (topic, partition): under exactly-once they are committed by the
        # producer inside the transaction, so the consumer's statistics never see them.
        self._committed: dict[tuple[str, str], int] = {}
        self._lag_lock = threading.Lock()

    # --- counts -----------------------------------------------------------------------------------

    def consumed(self, topic: str, n: int = 1) -> None:
        self._consumed.labels(topic).inc(n)

    def produced(self, topic: str, n: int = 1) -> None:
        self._produced.labels(topic).inc(n)

    def dead_lettered(self, topic: str, reason: Reason | str, n: int = 1) -> None:
        self._dead_lettered.labels(topic, Reason(reason).value).inc(n)

    def leak(self, entity: str, path: str, n: int = 1) -> None:
        self._leaks.labels(entity, path).inc(n)

    def scan_entities(self, entity: str, n: int = 1) -> None:
        self._scan_entities.labels(entity).inc(n)

    def transaction(self, committed: bool) -> None:
        outcome = TransactionOutcome.COMMITTED if committed else TransactionOutcome.ABORTED
        self._transactions.labels(outcome.value).inc()

    def registry_error(self, kind: str) -> None:
        self._registry_errors.labels(kind).inc()

    def registry_available(self, available: bool) -> None:
        self._registry_available.set(1 if available else 0)

    def plan_compiled(self) -> None:
        self._plans.inc()

    def assigned_partitions(self, n: int) -> None:
        self._assigned.set(n)

    # --- timings and sizes ------------------------------------------------------------------------

    def batch_size(self, n: int) -> None:
        self._batch.observe(n)
        self._last_batch.set(time.time())

    def observe_stage(self, stage: Stage | str, seconds: float) -> None:
        self._stage.labels(Stage(stage).value).observe(seconds)

    @contextmanager
    def stage_seconds(self, stage: Stage | str) -> Iterator[None]:
        """Time the block as one observation of ``stage`` (recorded even if the block raises)."""
        histogram = self._stage.labels(Stage(stage).value)
        start = time.perf_counter()
        try:
            yield
        finally:
            histogram.observe(time.perf_counter() - start)

    def end_to_end_lag(self, seconds: float) -> None:
        self._lag.observe(max(0.0, seconds))

    def end_to_end_lags(self, timestamps_ms: Iterable[int], now: float | None = None) -> None:
        """Observe ``now`` minus each record timestamp (milliseconds since the epoch, as Kafka gives them)."""
        now_ms = (time.time() if now is None else now) * 1000.0
        observe = self._lag.observe
        for timestamp_ms in timestamps_ms:
            if timestamp_ms > 0:  # -1 / 0: the record carries no timestamp
                observe(max(0.0, (now_ms - timestamp_ms) / 1000.0))

    # --- librdkafka statistics --------------------------------------------------------------------

    def committed(self, offsets: dict[tuple[str, int], int]) -> None:
        """The next offsets to read, per partition, just committed (in a transaction or by the consumer)."""
        with self._lag_lock:
            for (topic, partition), offset in offsets.items():
                self._committed[(topic, str(partition))] = offset

    def on_stats(self, stats_json: str) -> None:
        """``stats_cb`` for the consumer: consumer lag per assigned partition.

        The lag is the high watermark minus the committed offset, the newer of the one librdkafka fetched
        (at assignment, or its own commits) and the one the worker committed in a transaction: librdkafka's
        own ``consumer_lag`` knows only the former, and under exactly-once it stays at the offset the
        partition was assigned with. Partitions with an unknown lag (before the first fetch) and the
        internal ``-1`` partition are skipped; partitions no longer reported are removed, so a revoked
        partition does not keep its last lag forever.
        """
        try:
            stats = json.loads(stats_json)
        except ValueError:
            return
        seen: set[tuple[str, str]] = set()
        topics = stats.get("topics") if isinstance(stats, dict) else None
        for topic, topic_stats in (topics or {}).items():
            partitions = topic_stats.get("partitions") if isinstance(topic_stats, dict) else None
            for partition, partition_stats in (partitions or {}).items():
                if partition == "-1" or not isinstance(partition_stats, dict):
                    continue
                lag = self._lag_of(topic, partition, partition_stats)
                if lag is None:
                    continue
                self._consumer_lag.labels(topic, partition).set(lag)
                seen.add((topic, partition))
        with self._lag_lock:
            for gone in self._lag_partitions - seen:
                with suppress(KeyError):
                    self._consumer_lag.remove(*gone)
                self._committed.pop(gone, None)
            self._lag_partitions = seen

    def _lag_of(self, topic: str, partition: str, stats: dict[str, object]) -> int | None:
        end = stats.get("hi_offset", -1)
        fetched = stats.get("committed_offset", -1)
        with self._lag_lock:
            ours = self._committed.get((topic, partition), -1)
        committed = max(ours, fetched if isinstance(fetched, int) else -1)
        if isinstance(end, int) and end >= 0 and committed >= 0:
            return max(0, end - committed)
        lag = stats.get("consumer_lag", -1)  # nothing committed yet: librdkafka's view from the position
        return lag if isinstance(lag, int) and lag >= 0 else None
