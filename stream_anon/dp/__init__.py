"""Differential-privacy mechanisms (OpenDP measurements), shared by the ``noise`` op and ``aggregate``.

``mechanisms.py`` builds the measurements and checks their privacy maps; ``pool.py`` draws noise ahead
of the record path. docs/privacy.md states each guarantee (epsilon, delta, unit of privacy).
"""

from stream_anon.dp.mechanisms import BoundedValueNoise, NoiseRangeError
from stream_anon.dp.pool import NoiseSource

__all__ = ["BoundedValueNoise", "NoiseRangeError", "NoiseSource"]
