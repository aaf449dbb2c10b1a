"""The differential-privacy measurements, built once with OpenDP from the settings.

The privacy unit is one user's records in one window. After contribution bounding a user has at most
``k = max_records_per_user`` records in a window, spread over at most ``k`` cohorts, so adding or removing
one user moves the vector of per-cohort figures by at most (L1):

* record counts: ``k``;  distinct users: ``k`` (one per cohort the user appears in);
* the clamped sum of a numeric field with bounds ``[min, max]``: ``k * max(|min|, |max|)``.

Each figure's noise scale is that sensitivity divided by the figure's epsilon, and OpenDP's privacy map
confirms the epsilon. Counts use the discrete Laplace mechanism; sums the Laplace mechanism on floats
(OpenDP samples both exactly, not with naive floating point).

Cohort keys that come from the data (no ``cohort_values`` configured) are released with OpenDP's
Laplace threshold mechanism: a cohort appears only if its noisy count reaches ``suppress_below``, which
costs a small ``delta`` (the chance that a cohort holding one user at all gets published).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import opendp.prelude as dp

from stream_anon.aggregate.settings import AggregateSettings
from stream_anon.config import ConfigError

dp.enable_features("contrib")

# OpenDP's float privacy maps round up; accept a map this much above the target as the same epsilon.
_EPSILON_SLACK = 1e-9


@dataclass(frozen=True, slots=True)
class Spend:
    """Privacy loss of one release: epsilon and delta."""

    epsilon: float
    delta: float


def _int_vector_laplace(scale: float) -> Any:
    return dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T="i64")), dp.l1_distance(T="i64"), scale=scale)


def _float_vector_laplace(scale: float) -> Any:
    domain = dp.vector_domain(dp.atom_domain(T=float, nan=False))
    return dp.m.make_laplace(domain, dp.l1_distance(T=float), scale=scale)


def _count_threshold(scale: float, threshold: int) -> Any:
    domain = dp.map_domain(dp.atom_domain(T=str), dp.atom_domain(T="i64"))
    metric = dp.l01inf_distance(dp.absolute_distance(T="i64"))
    return dp.m.make_laplace_threshold(domain, metric, scale=scale, threshold=threshold)


def _calibrated(make: Any, d_in: Any, l1: float, epsilon: float) -> tuple[Any, float]:
    """The measurement at scale l1/epsilon, nudged up if OpenDP's map rounds above epsilon."""
    scale = l1 / epsilon
    for _ in range(50):
        measurement = make(scale)
        spent = measurement.map(d_in)
        spent_eps = spent[0] if isinstance(spent, tuple) else spent
        if spent_eps <= epsilon * (1 + _EPSILON_SLACK):
            return measurement, scale
        scale *= 1 + 1e-9
    raise ConfigError("cannot calibrate the noise to the configured epsilon")  # pragma: no cover


class Mechanisms:
    """Noisy counts, distinct-user counts and bounded sums for the cohorts of one window."""

    def __init__(self, settings: AggregateSettings) -> None:
        k = settings.max_records_per_user
        self.threshold = settings.suppress_below
        self.known_cohorts = settings.cohort_values is not None
        if self.known_cohorts:
            self._counts, self.count_scale = _calibrated(_int_vector_laplace, k, k, settings.epsilon.count)
            count_spend = Spend(float(self._counts.map(k)), 0.0)
        else:
            d_in = (k, k, k)  # cohorts touched, total change, largest change in one cohort

            def make(scale: float) -> Any:
                return _count_threshold(scale, self.threshold)

            self._counts, self.count_scale = _calibrated(make, d_in, k, settings.epsilon.count)
            eps, delta = self._counts.map(d_in)
            count_spend = Spend(float(eps), float(delta))
            if delta > settings.budget.per_window_delta:
                needed = minimal_threshold(k, self.count_scale, settings.budget.per_window_delta)
                raise ConfigError(
                    f"invalid configuration: aggregate.suppress_below {self.threshold} lets a cohort of one "
                    f"user through with probability {delta:.3g} (delta), above budget.per_window_delta "
                    f"{settings.budget.per_window_delta:g}; raise suppress_below to at least {needed}, "
                    "or list aggregate.cohort_values"
                )
        self._distinct, self.distinct_scale = _calibrated(
            _int_vector_laplace, k, k, settings.epsilon.distinct_users
        )
        self._sums: dict[str, Any] = {}
        self.sum_scales: dict[str, float] = {}
        figure_spend = {"records": count_spend, "users": Spend(float(self._distinct.map(k)), 0.0)}
        for name, field in settings.numeric.items():
            sensitivity = k * field.magnitude
            self._sums[name], self.sum_scales[name] = _calibrated(
                _float_vector_laplace, sensitivity, sensitivity, field.epsilon
            )
            figure_spend[f"sum.{name}"] = Spend(float(self._sums[name].map(sensitivity)), 0.0)
        self.figure_spend = figure_spend
        # Basic composition over the figures of one window.
        self.window_spend = Spend(
            sum(s.epsilon for s in figure_spend.values()), sum(s.delta for s in figure_spend.values())
        )

    def released_counts(self, exact: dict[str, int]) -> dict[str, int]:
        """Noisy counts of the cohorts that pass the threshold (``noisy >= suppress_below``)."""
        if not exact:
            return {}
        if self.known_cohorts:
            keys = list(exact)
            noisy = self._counts([exact[key] for key in keys])
            return {key: value for key, value in zip(keys, noisy, strict=True) if value >= self.threshold}
        released: dict[str, int] = self._counts(exact)
        return released

    def noisy_distinct(self, exact: list[int]) -> list[int]:
        return list(self._distinct(exact)) if exact else []

    def noisy_sums(self, name: str, exact: list[float]) -> list[float]:
        return list(self._sums[name](exact)) if exact else []


def minimal_threshold(k: int, scale: float, max_delta: float) -> int:
    """The smallest ``suppress_below`` whose delta stays within ``max_delta`` (binary search)."""
    d_in = (k, k, k)
    low, high = 1, max(2, k)
    while _count_threshold(scale, high).map(d_in)[1] > max_delta:
        low, high = high, high * 2
        if high > 1 << 40:
            raise ConfigError("no suppression threshold reaches the configured delta")  # pragma: no cover
    while low < high:
        middle = (low + high) // 2
        if _count_threshold(scale, middle).map(d_in)[1] > max_delta:
            low = middle + 1
        else:
            high = middle
    return high
