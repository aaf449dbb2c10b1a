"""OpenDP measurements and the exact arithmetic around them, for the ``noise`` op and the aggregates.

``BoundedValueNoise`` is the ``noise`` op's mechanism: clamp one value to public bounds, then add
(discrete) Laplace noise to the value itself, so that the output is epsilon-DP for that value.

Floats are handled as OpenDP handles them in its own float Laplace mechanism: the clamped value is
rounded to a grid of step 2^e, discrete Laplace noise in grid steps is added to that integer exactly,
and the sum is turned back into a float. Adding float noise to the float input instead (``x + noise``)
keeps the input's low bits in the output: 37.5 and 37.6 then stay distinguishable from a single output
whatever the noise (issue 21). On the grid, two inputs differ by at most ``sensitivity`` steps and
nothing else of them survives; the noise samples themselves come from OpenDP's measurement at the
calibrated scale, drawn ahead in vectors (``pool.NoiseSource``) so the record path does integer
arithmetic only. Integers use the same path with a step of 1, in 64-bit integers: ``long`` values keep
their documented noise scale for any bounds whose noise 64 bits can hold, and bounds that would not
are refused when the rules are compiled.
"""

from __future__ import annotations

import math
from typing import Any

from stream_anon.dp.pool import NoiseSource

I64_MAX = 2**63 - 1
FLOAT32_MAX = 3.4028234663852886e38
# Largest finite value of each Avro numeric type; outputs are clamped into it (post-processing).
TYPE_RANGE: dict[str, tuple[int | float, int | float]] = {
    "int": (-(2**31), 2**31 - 1),
    "long": (-(2**63), 2**63 - 1),
    "float": (-FLOAT32_MAX, FLOAT32_MAX),
    "double": (-1.7976931348623157e308, 1.7976931348623157e308),
}
# A float field's bounds span about 2^GRID_BITS grid steps: far finer than any noise scale epsilon
# allows, and small enough that noise in steps stays within 64 bits for epsilon down to ~1e-8.
GRID_BITS = 30
# Bounds are refused when the noise would be clamped (at the 64-bit sampler's or the type's limits)
# with more than this probability per value: beyond it the output no longer has the documented scale.
SATURATION = 1e-9
# OpenDP's privacy maps round up in floating point; a map this close above epsilon is epsilon.
EPSILON_SLACK = 1e-9


class NoiseRangeError(ValueError):
    """Bounds and epsilon whose noise the mechanism cannot represent; the message says why."""


class CalibrationError(ValueError):
    """OpenDP's privacy map does not reach the configured epsilon at any scale tried."""


def grid_exponent(width: float) -> int:
    """The exponent e of a grid step 2^e that cuts ``width`` into 2^(GRID_BITS - 1) to 2^GRID_BITS steps."""
    return math.frexp(width)[1] - GRID_BITS


def to_steps(value: float, exponent: int) -> int:
    """A float as a whole number of grid steps 2^exponent (ldexp is exact; round is monotone)."""
    return round(math.ldexp(value, -exponent))


def from_steps(steps: int, exponent: int) -> float:
    return math.ldexp(float(steps), exponent)


def _opendp() -> Any:
    """OpenDP's prelude, imported on first use (it is not needed by plans without noise)."""
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp


def int_vector_laplace(scale: float) -> Any:
    """OpenDP's discrete Laplace on a vector of 64-bit integers, L1 distance: one draw per entry."""
    dp = _opendp()
    return dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T="i64")), dp.l1_distance(T="i64"), scale=scale)


def count_threshold(scale: float, threshold: int) -> Any:
    """OpenDP's Laplace threshold mechanism on a map of keys to 64-bit counts: keys below are dropped."""
    dp = _opendp()
    domain = dp.map_domain(dp.atom_domain(T=str), dp.atom_domain(T="i64"))
    metric = dp.l01inf_distance(dp.absolute_distance(T="i64"))
    return dp.m.make_laplace_threshold(domain, metric, scale=scale, threshold=threshold)


def calibrated(make: Any, d_in: Any, l1: float, epsilon: float) -> tuple[Any, float]:
    """The measurement at scale l1/epsilon, nudged up if OpenDP's map rounds above epsilon."""
    scale = l1 / epsilon
    for _ in range(50):
        measurement = make(scale)
        spent = measurement.map(d_in)
        spent_eps = spent[0] if isinstance(spent, tuple) else spent
        if spent_eps <= epsilon * (1 + EPSILON_SLACK):
            return measurement, scale
        scale *= 1 + 1e-9
    raise CalibrationError("cannot calibrate the noise to the configured epsilon")  # pragma: no cover


def fits_64_bits(step_scale: float) -> bool:
    """Whether discrete Laplace noise at this scale (in steps) stays far inside 64-bit integers."""
    return step_scale * math.log(1 / SATURATION) <= I64_MAX // 2


def _check_map(measurement: Any, d_in: int, epsilon: float) -> float:
    spent = float(measurement.map(d_in))
    if spent > epsilon * (1 + EPSILON_SLACK):
        raise NoiseRangeError(f"OpenDP's privacy map gives epsilon {spent:g} above {epsilon:g}")
    return spent


class BoundedValueNoise:
    """Clamp to ``[low, high]``, then Laplace (floats) or discrete Laplace (integers) on the value.

    ``epsilon``-DP for one value (the unit: the value of one field of one record, any two values in the
    bounds being neighbours); ``delta`` is 0. Build once per field; ``__call__`` per value.
    """

    POOL = 4096  # samples drawn per OpenDP call

    def __init__(self, low: float, high: float, epsilon: float, avro_type: str) -> None:
        if avro_type not in TYPE_RANGE:
            raise NoiseRangeError(f"noise cannot apply to type {avro_type}")
        if not (math.isfinite(epsilon) and epsilon > 0):
            raise NoiseRangeError("epsilon must be a positive number")
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise NoiseRangeError("bounds must be finite, [low, high] with low < high")
        self.integral = avro_type in ("int", "long")
        self.avro_type = avro_type
        self.epsilon = epsilon
        if self.integral:
            self.exponent = 0  # grid step 2^0 = 1
            self.low_steps, self.high_steps = math.ceil(low), math.floor(high)
            if self.low_steps >= self.high_steps:
                raise NoiseRangeError(f"bounds [{low:g}, {high:g}] hold fewer than two integers")
        else:
            width = high - low
            if not math.isfinite(width):
                raise NoiseRangeError("bounds are too far apart for a 64-bit float")
            self.exponent = grid_exponent(width)
            try:
                self.low_steps = to_steps(low, self.exponent)
                self.high_steps = to_steps(high, self.exponent)
            except OverflowError:
                raise NoiseRangeError(
                    f"bounds [{low:g}, {high:g}] are too narrow for their magnitude in a 64-bit float"
                ) from None
        # Any two clamped (and rounded) inputs differ by at most this many steps.
        self.sensitivity = self.high_steps - self.low_steps
        if self.sensitivity > I64_MAX:
            raise NoiseRangeError(
                f"bounds [{low:g}, {high:g}] are wider than 64-bit integer noise can cover (2^63)"
            )
        self.step_scale = self.sensitivity / epsilon  # noise scale in grid steps
        tail = self.step_scale * math.log(1 / SATURATION)  # |noise| exceeds this with prob. < SATURATION
        if tail > I64_MAX // 2:
            raise NoiseRangeError(
                f"the noise scale {self.scale:.3g} for bounds [{low:g}, {high:g}] and epsilon {epsilon:g} "
                "does not fit the 64-bit sampler: raise epsilon or narrow the bounds"
            )
        type_low, type_high = TYPE_RANGE[avro_type]
        margin = math.ldexp(tail, self.exponent)
        if high + margin > type_high or low - margin < type_low:
            raise NoiseRangeError(
                f"the noise scale {self.scale:.3g} for bounds [{low:g}, {high:g}] and epsilon {epsilon:g} "
                f"would push outputs past the range of {avro_type} (noise up to {margin:.3g}): "
                "narrow the bounds, raise epsilon or use a wider type"
            )
        self._measurement = int_vector_laplace(self.step_scale)
        # The noise of each value is its own draw: the vector's l1 map at the sensitivity is one value's.
        self.spent = _check_map(self._measurement, self.sensitivity, epsilon)
        self._source: NoiseSource | None = None
        self._type_low, self._type_high = type_low, type_high
        self._low, self._high = float(low), float(high)

    @property
    def scale(self) -> float:
        """The Laplace scale in the value's units: (high - low) / epsilon."""
        return math.ldexp(self.step_scale, self.exponent)

    def source(self) -> NoiseSource:
        """The pool of noise samples (in grid steps); one per mechanism, started on first use."""
        if self._source is None:
            import numpy

            zeros: Any = numpy.zeros(self.POOL, dtype=numpy.int64)
            measurement = self._measurement
            # OpenDP's measurement of a vector of zeros: POOL independent discrete Laplace samples.
            self._source = NoiseSource(lambda: list(measurement(zeros)))
        return self._source

    def __call__(self, value: float) -> int | float:
        """The noisy value; raises ``ValueError`` for NaN."""
        take = self.source().take
        if self.integral:
            steps = min(max(value, self.low_steps), self.high_steps)
            if type(steps) is not int:  # an integral float, from a client that sent 3.0 for a long
                steps = round(steps)
            out = steps + take()
            return min(max(out, self._type_low), self._type_high)  # type: ignore[no-any-return]
        if value != value:
            raise ValueError("value is NaN")
        clamped = min(max(value, self._low), self._high)  # infinities too
        # ldexp is exact and round is monotone: the steps stay within [low_steps, high_steps]
        steps = round(math.ldexp(clamped, -self.exponent))
        return math.ldexp(float(steps + take()), self.exponent)
