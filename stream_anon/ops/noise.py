"""noise: differential-privacy noise on one number; the mechanism is ``dp.BoundedValueNoise``."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from stream_anon.dp import BoundedValueNoise, NoiseRangeError
from stream_anon.ops.base import NUMERIC, Apply, Operation, RuleError, ValueRuleError, register


@register
class Noise(Operation):
    """Differential-privacy noise on one value: the mechanism is ``dp.BoundedValueNoise``.

    The value is clamped to ``bounds`` (the sensitivity is their width), then Laplace noise of scale
    (hi - lo) / epsilon is added by OpenDP's measurement on the value (floats on a fine grid, integers in
    64 bits). Bounds and epsilon whose noise the mechanism cannot represent are refused here.
    """

    name = "noise"
    accepts = NUMERIC
    params: ClassVar[dict[str, type | tuple[type, ...]]] = {"epsilon": (int, float), "bounds": list}
    required = frozenset({"epsilon", "bounds"})
    POOL = BoundedValueNoise.POOL

    def check(self) -> None:
        eps = self.spec["epsilon"]
        bounds = self.spec["bounds"]
        if not (isinstance(eps, (int, float)) and eps > 0 and math.isfinite(eps)):
            raise RuleError("noise: epsilon must be a positive number")
        if (
            len(bounds) != 2
            or not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)
            or not bounds[0] < bounds[1]
        ):
            raise RuleError("noise: bounds must be [low, high] with low < high")
        try:
            self.mechanism = BoundedValueNoise(bounds[0], bounds[1], float(eps), self.base)
        except NoiseRangeError as exc:
            raise RuleError(f"noise: {exc}") from None
        self.scale = self.mechanism.scale

    def build(self) -> Apply:
        noisy_value = self.mechanism

        def noisy(value: Any, ctx: Any) -> Any:
            try:
                return noisy_value(value)
            except ValueError:
                raise ValueRuleError("value is NaN") from None

        return noisy
