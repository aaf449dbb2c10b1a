"""From a closed window's exact figures to the published aggregate records: budget, noise, suppression.

Order of a release: pick the cohorts (all configured ones, or those seen), draw the noisy counts
(cohorts under ``suppress_below`` are dropped here, on the noisy count), draw distinct users and sums for
the cohorts that remain, post-process (clamp, derive means), charge the ledger with the release itself
and the persons whose records it used, and only then hand the records out for publishing.

Nothing here decides on exact figures: which cohorts appear depends on the noisy counts only, and the
budget is per person (the core left out those whose lifetime budget was spent), so no cohort is ever
dropped for lack of budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog

from stream_anon.aggregate.ledger import BudgetExceeded, Ledger
from stream_anon.aggregate.metrics import AggregateMetrics
from stream_anon.aggregate.noise import Mechanisms
from stream_anon.aggregate.settings import AggregateSettings
from stream_anon.aggregate.windows import ClosedWindow, Cohort, CohortStats, cohort_key, known_cohorts

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Release:
    """The records to publish for one window; ``replayed`` when they come from the ledger."""

    start_ms: int
    end_ms: int
    records: list[dict[str, Any]]
    replayed: bool = False


class Releaser:
    def __init__(
        self,
        settings: AggregateSettings,
        mechanisms: Mechanisms,
        ledger: Ledger,
        metrics: AggregateMetrics | None = None,
    ) -> None:
        self._s = settings
        self._mechanisms = mechanisms
        self._ledger = ledger
        self._metrics = metrics if metrics is not None else AggregateMetrics()
        self._universe = known_cohorts(settings) if settings.cohort_values is not None else None
        self._numeric = list(settings.numeric)

    def release(self, window: ClosedWindow) -> Release | None:
        """The window's release, charged to the ledger; None when the ledger refuses it."""
        prior = self._ledger.window(window.start_ms)
        if prior is not None:
            # Charged before a crash or a failed transaction: publish the same noisy values again.
            return Release(prior.start_ms, prior.end_ms, prior.release, replayed=True)
        if window.records_kept and not window.persons:
            raise ValueError("the window was closed without lifetime admission (WindowedAggregation admit)")
        spend = self._mechanisms.window_spend
        candidates = self._universe if self._universe is not None else sorted(window.cohorts, key=cohort_key)
        by_key = {cohort_key(c): c for c in candidates}
        empty = CohortStats(0, 0, tuple(0.0 for _ in self._numeric), tuple(0 for _ in self._numeric))
        exact = {key: window.cohorts.get(cohort, empty) for key, cohort in by_key.items()}
        records = self._noisy_records(window, exact, by_key)
        try:
            self._ledger.charge(
                window.start_ms, window.end_ms, spend.epsilon, spend.delta, window.persons, records
            )
        except BudgetExceeded as exc:
            self._metrics.refusals.inc()
            log.warning("release_refused", window_start=window.start_ms, reason=str(exc))
            return None
        self._metrics.epsilon.inc(spend.epsilon)
        return Release(window.start_ms, window.end_ms, records)

    def _noisy_records(
        self, window: ClosedWindow, exact: dict[str, CohortStats], by_key: dict[str, Cohort]
    ) -> list[dict[str, Any]]:
        counts = self._mechanisms.released_counts({key: stats.records for key, stats in exact.items()})
        keys = sorted(counts)
        users = self._mechanisms.noisy_distinct([exact[key].users for key in keys])
        sums = {
            name: self._mechanisms.noisy_sums(name, [exact[key].sum_steps[i] for key in keys])
            for i, name in enumerate(self._numeric)
        }
        figure_epsilon = {name: spend.epsilon for name, spend in self._mechanisms.figure_spend.items()}
        spend = self._mechanisms.window_spend
        records = []
        for i, key in enumerate(keys):
            count = max(counts[key], 0)
            means: dict[str, float | None] = {}
            for name in self._numeric:
                bounds = self._s.numeric[name]
                # Post-processing of two noisy figures: costs no budget; clamped into the field's bounds.
                means[name] = min(max(sums[name][i] / count, bounds.min), bounds.max) if count > 0 else None
            records.append(
                {
                    "window_start": window.start_ms,
                    "window_end": window.end_ms,
                    "cohort": dict(zip(self._s.group_by, by_key[key], strict=True)),
                    "records": count,
                    "users": min(max(users[i], 0), count),
                    "sums": {name: sums[name][i] for name in self._numeric},
                    "means": means,
                    "epsilon": spend.epsilon,
                    "delta": spend.delta,
                    "figure_epsilon": figure_epsilon,
                    "max_records_per_user": self._s.max_records_per_user,
                    "suppress_below": self._s.suppress_below,
                }
            )
        return records
