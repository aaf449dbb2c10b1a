"""generalize: a coarser value (IP prefix, time unit, numeric band, string prefix, rounding, or a
per-subject date shift)."""

from __future__ import annotations

import ipaddress
import math
from datetime import UTC, date, datetime, timedelta
from socket import AF_INET, AF_INET6, inet_ntop, inet_pton
from typing import Any, ClassVar

from stream_anon.crypto import HmacSha256
from stream_anon.ops.base import (
    INTEGRAL,
    NUMERIC,
    Apply,
    AvroType,
    Operation,
    RuleError,
    ValueRuleError,
    logical_type,
    register,
)

DATE_SHIFT_PURPOSE = "date_shift"

_TIME_UNITS = ("minute", "hour", "day", "month", "year")
# Units that make a value coarser for the date and time-of-day logical types (a date of birth to its
# month or year; a time of day to its hour).
_DATE_UNITS = ("month", "year")
_TIME_OF_DAY_SCALE = {"time-millis": 1_000, "time-micros": 1_000_000}
_EPOCH_DAY = date(1970, 1, 1)
_TIME_SCALE = {
    "timestamp-millis": 1_000,
    "timestamp-micros": 1_000_000,
    "local-timestamp-millis": 1_000,
    "local-timestamp-micros": 1_000_000,
}


@register
class Generalize(Operation):
    name = "generalize"
    accepts = frozenset({"string", "int", "long", "float", "double"})
    params: ClassVar[dict[str, type | tuple[type, ...]]] = {
        "method": str,
        "ipv4_prefix": int,
        "ipv6_prefix": int,
        "unit": str,
        "width": (int, float),
        "min": (int, float),
        "max": (int, float),
        "length": int,
        "decimals": int,
        "subject": str,
        "max_days": int,
        "key": str,
    }
    required = frozenset({"method"})
    METHODS: ClassVar[dict[str, frozenset[str]]] = {
        "ip_prefix": frozenset({"string"}),
        "time": frozenset({"string", "long", "int"}),
        "bucket": NUMERIC,
        "prefix": frozenset({"string"}),
        "round": frozenset({"float", "double"}),
        "date_shift": frozenset({"long", "int"}),
    }

    def check(self) -> None:
        method = self.spec["method"]
        if method not in self.METHODS:
            raise RuleError(f"generalize: method must be one of {', '.join(self.METHODS)}")
        if self.base not in self.METHODS[method]:
            raise RuleError(f"generalize {method} cannot apply to type {self.base}")
        self.method = method
        if method == "ip_prefix":
            if logical_type(self.avro) is not None:  # a uuid string can never hold an address
                raise RuleError(f"generalize ip_prefix cannot apply to a {logical_type(self.avro)} string")
            self.v4 = self._int("ipv4_prefix", 24, 0, 32)
            self.v6 = self._int("ipv6_prefix", 48, 0, 128)
        elif method == "time":
            unit, logical = self.spec.get("unit", "day"), logical_type(self.avro)
            if unit not in _TIME_UNITS:
                raise RuleError(f"generalize time: unit must be one of {', '.join(_TIME_UNITS)}")
            if logical == "date" and unit not in _DATE_UNITS:
                raise RuleError(f"generalize time on a date: unit must be one of {', '.join(_DATE_UNITS)}")
            if logical in _TIME_OF_DAY_SCALE and unit not in ("minute", "hour"):
                raise RuleError(f"generalize time on a {logical}: unit must be minute or hour")
            if self.base == "string" and logical is not None:
                raise RuleError(f"generalize time cannot apply to a string with logical type {logical}")
            if self.base != "string" and logical not in (*_TIME_SCALE, *_TIME_OF_DAY_SCALE, "date"):
                raise RuleError(
                    "generalize time needs a date, time-millis/micros or timestamp-millis/micros logical "
                    "type, or an ISO string"
                )
        elif method == "bucket":
            width = self.spec.get("width", 10)
            if width <= 0:
                raise RuleError("generalize bucket: width must be positive")
            lo, hi = self.spec.get("min"), self.spec.get("max")
            if lo is not None and hi is not None and lo >= hi:
                raise RuleError("generalize bucket: min must be below max")
        elif method == "prefix":
            self.length = self._int("length", 3, 0, 1000)
        elif method == "round":
            self.decimals = self._int("decimals", 2, 0, 15)
        elif method == "date_shift":
            if "subject" not in self.spec:
                raise RuleError("generalize date_shift: name the subject field with 'subject'")
            if logical_type(self.avro) not in _TIME_SCALE:
                raise RuleError("generalize date_shift needs a timestamp-millis/micros logical type")
            self.max_days = self._int("max_days", 30, 1, 3650)
            self.key_name, self.version = self._key()

    def output_type(self) -> AvroType:
        return "string" if self.method in ("ip_prefix", "bucket") else self.avro

    def build(self) -> Apply:
        return getattr(self, f"_build_{self.method}")()  # type: ignore[no-any-return]

    def _build_ip_prefix(self) -> Apply:
        v4, v6 = self.v4, self.v6
        v4_mask = (0xFFFFFFFF << (32 - v4)) & 0xFFFFFFFF
        v6_mask = ((1 << 128) - 1) ^ ((1 << (128 - v6)) - 1)
        # a whole-byte IPv4 prefix (/8, /16, /24, /32) is a slice of the packed address: no integer maths
        v4_bytes, v4_pad = (v4 // 8, bytes(4 - v4 // 8)) if v4 % 8 == 0 else (-1, b"")
        v4_suffix = f"/{v4}"

        def prefix(value: str, ctx: Any) -> str:
            # The C socket parsers first (2-4 us a value, where ipaddress costs 10-60 us); they are
            # strict, so whatever they refuse (leading zeros, spaces, IPv4-mapped forms) goes to ipaddress.
            try:
                if ":" in value:
                    n = int.from_bytes(inet_pton(AF_INET6, value), "big") & v6_mask
                    # IPv4-mapped/compatible prints as a dotted quad in inet_ntop: ipaddress decides
                    if n >> 32 not in (0, 0xFFFF):
                        return f"{inet_ntop(AF_INET6, n.to_bytes(16, 'big'))}/{v6}"
                elif v4_bytes >= 0:
                    return inet_ntop(AF_INET, inet_pton(AF_INET, value)[:v4_bytes] + v4_pad) + v4_suffix
                else:
                    n = int.from_bytes(inet_pton(AF_INET, value), "big") & v4_mask
                    return f"{n >> 24}.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}/{v4}"
            except (OSError, ValueError):
                pass
            try:
                ip = ipaddress.ip_address(value.strip())
            except ValueError:
                raise ValueRuleError("value is not an IP address") from None
            bits = v4 if ip.version == 4 else v6
            return str(ipaddress.ip_network(f"{ip}/{bits}", strict=False))

        return prefix

    def _build_time(self) -> Apply:
        unit = self.spec.get("unit", "day")
        if self.base == "string":

            def iso(value: str, ctx: Any) -> str:
                try:
                    moment = datetime.fromisoformat(value)
                except ValueError:
                    raise ValueRuleError("value is not an ISO 8601 timestamp") from None
                return _truncate(moment, unit).isoformat()

            return iso
        logical = logical_type(self.avro)
        if logical == "date":  # days since 1970-01-01

            def day(value: int, ctx: Any) -> int:
                moment = _EPOCH_DAY + timedelta(days=value)
                coarse = moment.replace(day=1) if unit == "month" else moment.replace(month=1, day=1)
                return (coarse - _EPOCH_DAY).days

            return day
        scale = _TIME_OF_DAY_SCALE.get(logical or "") or _TIME_SCALE[logical or "timestamp-millis"]
        step = {"minute": 60, "hour": 3600, "day": 86400}.get(unit)
        if step is not None:
            size = step * scale
            return lambda value, ctx: value - value % size

        def month(value: int, ctx: Any) -> int:
            moment = datetime.fromtimestamp(value / scale, tz=UTC)
            return int(_truncate(moment, unit).timestamp()) * scale

        return month

    def _build_bucket(self) -> Apply:
        width = self.spec.get("width", 10)
        lo, hi = self.spec.get("min"), self.spec.get("max")
        integral = self.base in INTEGRAL and isinstance(width, int)

        def band(value: float, ctx: Any) -> str:
            if isinstance(value, float) and math.isnan(value):
                raise ValueRuleError("value is NaN")
            if lo is not None and value < lo:
                return f"<{lo}"
            if hi is not None and value >= hi:
                return f"{hi}+"
            start = math.floor(value / width) * width
            if integral:
                return f"{int(start)}-{int(start + width - 1)}"
            return f"[{start:g},{start + width:g})"

        return band

    def _build_prefix(self) -> Apply:
        n = self.length
        return lambda value, ctx: value[:n]

    def _build_round(self) -> Apply:
        decimals = self.decimals

        def rounded(value: float, ctx: Any) -> float:
            return value if not math.isfinite(value) else round(value, decimals)

        return rounded

    def _build_date_shift(self) -> Apply:
        mac = HmacSha256(self.keys.derive(self.key_name, self.version, DATE_SHIFT_PURPOSE)).mac
        scale = _TIME_SCALE[logical_type(self.avro) or "timestamp-millis"]
        span = self.max_days
        subject_path = self.spec["subject"].split(".")
        day = 86400 * scale

        def shifted(value: int, ctx: Any) -> int:
            subject: Any = ctx.record
            for part in subject_path:
                subject = subject.get(part) if isinstance(subject, dict) else None
            if subject is None:
                raise ValueRuleError("date_shift subject is null")
            digest = mac(str(subject).encode())
            # a non-zero number of days in [-max_days, max_days], the same for all of a subject's records
            days = int.from_bytes(digest[:8], "big") % (2 * span) - span
            days += days >= 0
            return int(value + days * day)

        return shifted


def _truncate(moment: datetime, unit: str) -> datetime:
    if unit == "minute":
        return moment.replace(second=0, microsecond=0)
    if unit == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    if unit == "day":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "month":
        return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return moment.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
