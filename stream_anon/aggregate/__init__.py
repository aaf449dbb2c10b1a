"""Differentially private windowed aggregates of the sanitized topic (``stream-anon aggregate``).

``WindowedAggregation`` (windows.py) is the Kafka-free core: records in, closed windows with exact,
contribution-bounded figures out. ``Releaser`` (release.py) turns a closed window into noisy, suppressed
records charged to the ``Ledger`` (ledger.py), which keeps each person's lifetime budget; ``Mechanisms``
(noise.py) holds the window's OpenDP measurements (built in ``stream_anon.dp``);
``AggregateJob`` (job.py) is the Kafka loop. docs/privacy.md states the guarantees.
"""

from stream_anon.aggregate.ledger import BudgetExceeded, Ledger, LedgerError, Limits
from stream_anon.aggregate.metrics import AggregateMetrics, SkipReason
from stream_anon.aggregate.noise import Mechanisms, Spend
from stream_anon.aggregate.record import AGGREGATE_SCHEMA, AggregateEncoder
from stream_anon.aggregate.release import Release, Releaser
from stream_anon.aggregate.settings import AggregateSettings, aggregate_settings
from stream_anon.aggregate.windows import (
    Added,
    ClosedWindow,
    Cohort,
    CohortStats,
    WindowedAggregation,
    cohort_key,
    field_value,
)

__all__ = [
    "AGGREGATE_SCHEMA",
    "Added",
    "AggregateEncoder",
    "AggregateMetrics",
    "AggregateSettings",
    "BudgetExceeded",
    "ClosedWindow",
    "Cohort",
    "CohortStats",
    "Ledger",
    "LedgerError",
    "Limits",
    "Mechanisms",
    "Release",
    "Releaser",
    "SkipReason",
    "Spend",
    "WindowedAggregation",
    "aggregate_settings",
    "cohort_key",
    "field_value",
]
