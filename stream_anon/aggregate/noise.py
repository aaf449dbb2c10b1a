"""The differential-privacy measurements, built once with OpenDP from the settings.

The privacy unit is one user's records in one window. After contribution bounding a user has at most
``k = max_records_per_user`` records in a window, spread over at most ``k`` cohorts, so adding or removing
one user moves the vector of per-cohort figures by at most (L1):

* record counts: ``k``;  distinct users: ``k`` (one per cohort the user appears in);
* the clamped sum of a numeric field with bounds ``[min, max]``: ``k * max(|min|, |max|)``.

Each figure's noise scale is that sensitivity divided by the figure's epsilon, and OpenDP's privacy map
confirms the epsilon. Counts use the discrete Laplace mechanism. Sums are exact: each clamped value is
a whole number of grid steps (2^-30 of the field's magnitude, ``dp.mechanisms.grid_exponent``), the
windowing core adds those integers, and discrete Laplace noise in steps is added to the integer sum.
A floating-point sum would round differently with and without one record, beyond the sensitivity
(OpenDP's ``make_sum`` adds a rounding allowance for that); an integer sum has no rounding to allow for.
The measurements themselves are built in ``stream_anon.dp.mechanisms``.

Cohort keys that come from the data (no ``cohort_values`` configured) are released with OpenDP's
Laplace threshold mechanism: a cohort appears only if its noisy count reaches ``suppress_below``, which
costs a small ``delta`` (the chance that a cohort holding one user at all gets published).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stream_anon.aggregate.settings import AggregateSettings
from stream_anon.config import ConfigError
from stream_anon.dp.mechanisms import (
    CalibrationError,
    calibrated,
    count_threshold,
    fits_64_bits,
    from_steps,
    grid_exponent,
    int_vector_laplace,
    to_steps,
)


@dataclass(frozen=True, slots=True)
class Spend:
    """Privacy loss of one release: epsilon and delta."""

    epsilon: float
    delta: float


def _calibrated(make: Any, d_in: Any, l1: float, epsilon: float) -> tuple[Any, float]:
    try:
        return calibrated(make, d_in, l1, epsilon)
    except CalibrationError as exc:  # pragma: no cover
        raise ConfigError(str(exc)) from None


class Mechanisms:
    """Noisy counts, distinct-user counts and bounded sums for the cohorts of one window."""

    def __init__(self, settings: AggregateSettings) -> None:
        k = settings.max_records_per_user
        self.threshold = settings.suppress_below
        self.known_cohorts = settings.cohort_values is not None
        if self.known_cohorts:
            self._counts, self.count_scale = _calibrated(int_vector_laplace, k, k, settings.epsilon.count)
            count_spend = Spend(float(self._counts.map(k)), 0.0)
        else:
            d_in = (k, k, k)  # cohorts touched, total change, largest change in one cohort

            def make(scale: float) -> Any:
                return count_threshold(scale, self.threshold)

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
            int_vector_laplace, k, k, settings.epsilon.distinct_users
        )
        self._sums: dict[str, Any] = {}
        self.sum_scales: dict[str, float] = {}
        figure_spend = {"records": count_spend, "users": Spend(float(self._distinct.map(k)), 0.0)}
        self.sum_exponents: dict[str, int] = {}
        for name, field in settings.numeric.items():
            exponent = self.sum_exponents[name] = grid_exponent(field.magnitude)
            # in grid steps: k records, each at most the largest clamped value
            sensitivity = k * max(abs(to_steps(field.min, exponent)), abs(to_steps(field.max, exponent)))
            self._sums[name], scale = _calibrated(int_vector_laplace, sensitivity, sensitivity, field.epsilon)
            if not fits_64_bits(scale):
                raise ConfigError(
                    f"invalid configuration: aggregate.numeric.{name}: epsilon {field.epsilon:g} needs "
                    "noise beyond 64-bit integers; raise it"
                )
            self.sum_scales[name] = from_steps(1, exponent) * scale
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

    def noisy_sums(self, name: str, exact: list[int] | list[float]) -> list[float]:
        """Noisy sums of a field from its exact sums in grid steps (``CohortStats.sum_steps``); a float
        is taken as a value on the grid and converted."""
        if not exact:
            return []
        exponent = self.sum_exponents[name]
        steps = [v if type(v) is int else to_steps(v, exponent) for v in exact]
        if any(abs(v) > 2**62 for v in steps):
            raise ValueError(f"a sum of {name} is beyond 2^62 grid steps: too many records in one cohort")
        return [from_steps(v, exponent) for v in self._sums[name](steps)]


def minimal_threshold(k: int, scale: float, max_delta: float) -> int:
    """The smallest ``suppress_below`` whose delta stays within ``max_delta`` (binary search)."""
    d_in = (k, k, k)
    low, high = 1, max(2, k)
    while count_threshold(scale, high).map(d_in)[1] > max_delta:
        low, high = high, high * 2
        if high > 1 << 40:
            raise ConfigError("no suppression threshold reaches the configured delta")  # pragma: no cover
    while low < high:
        middle = (low + high) // 2
        if count_threshold(scale, middle).map(d_in)[1] > max_delta:
            low = middle + 1
        else:
            high = middle
    return high
