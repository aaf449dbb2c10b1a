"""Prometheus metrics of the aggregate job, on a registry of its own (tests make fresh ones).

Labels are bounded: skip reasons come from ``SkipReason``. Nothing here counts suppressed cohorts: how
many small cohorts a window held is itself a figure about the data that the noise does not cover.
"""

from __future__ import annotations

from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter, Gauge


class SkipReason(StrEnum):
    """Why a record of the sanitized topic did not enter a window."""

    UNDECODABLE = "undecodable"
    MISSING_USER = "missing_user"
    MISSING_EVENT_TIME = "missing_event_time"
    BAD_VALUE = "bad_value"
    UNKNOWN_COHORT = "unknown_cohort"
    REPLAYED = "replayed"  # its window was published before a restart


class AggregateMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.records = Counter(
            "stream_anon_aggregate_records", "Records added to an open window.", registry=r
        )
        self.late = Counter(
            "stream_anon_aggregate_late_records",
            "Records whose window had already closed (event time older than the watermark allows).",
            registry=r,
        )
        self.skipped = Counter(
            "stream_anon_aggregate_skipped_records",
            "Records that entered no window, by reason.",
            ["reason"],
            registry=r,
        )
        for reason in SkipReason:
            self.skipped.labels(reason.value)
        self.windows = Counter(
            "stream_anon_aggregate_windows_published", "Windows whose release was published.", registry=r
        )
        self.cohorts = Counter(
            "stream_anon_aggregate_cohorts_published", "Aggregate records published.", registry=r
        )
        self.refusals = Counter(
            "stream_anon_aggregate_budget_refusals",
            "Window releases the ledger refused (a window's epsilon or delta above its budget).",
            registry=r,
        )
        self.out_of_budget = Counter(
            "stream_anon_aggregate_persons_out_of_budget",
            "Persons left out of a window because their lifetime budget was spent (once per window).",
            registry=r,
        )
        self.epsilon = Counter(
            "stream_anon_aggregate_epsilon_spent",
            "Epsilon charged to the ledger, summed over windows.",
            registry=r,
        )
        self.open_windows = Gauge(
            "stream_anon_aggregate_open_windows", "Windows holding records, not yet closed.", registry=r
        )
        self.watermark = Gauge(
            "stream_anon_aggregate_watermark_seconds",
            "Event time up to which windows are complete (max event time seen minus allowed lateness).",
            registry=r,
        )
