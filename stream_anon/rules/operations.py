"""Operations: a registry of small classes behind one interface.

Each operation is built once per field at compile time: it validates its parameters and the Avro type
it is applied to (raising ``RuleError`` with a message), says its output type, and returns a plain
per-value function ``apply(value, ctx)``. Values are the non-null leaves: unions with null, arrays and
maps are unwrapped by the plan before an operation sees them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from socket import AF_INET, AF_INET6, inet_ntop, inet_pton
from typing import Any, ClassVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from stream_anon.dp import BoundedValueNoise, NoiseRangeError
from stream_anon.keys import Keys

Apply = Callable[[Any, Any], Any]
AvroType = Any

NUMERIC = frozenset({"int", "long", "float", "double"})
INTEGRAL = frozenset({"int", "long"})


class RuleError(Exception):
    """An annotation that cannot be compiled; the plan adds the field path."""


class ValueRuleError(Exception):
    """A rule that cannot handle one record's value; the message never contains the value."""


def base_type(avro: AvroType) -> str:
    """The underlying primitive name of a leaf type (``{"type": "long", "logicalType": ...}`` -> long)."""
    if isinstance(avro, dict):
        return str(avro.get("type"))
    return str(avro)


def logical_type(avro: AvroType) -> str | None:
    return avro.get("logicalType") if isinstance(avro, dict) else None


class Operation:
    """One anonymization technique. Subclasses set ``name``, ``accepts`` and implement ``build``."""

    name: ClassVar[str]
    accepts: ClassVar[frozenset[str] | None] = None  # base types it takes; None: any leaf
    generated: ClassVar[bool] = True  # output is produced by the rule on purpose (the verifier skips it)
    params: ClassVar[dict[str, type | tuple[type, ...]]] = {}
    required: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, spec: dict[str, Any], avro: AvroType, keys: Keys) -> None:
        unknown = set(spec) - set(self.params) - {"op"}
        if unknown:
            raise RuleError(f"{self.name}: unknown parameter(s) {', '.join(sorted(unknown))}")
        missing = self.required - set(spec)
        if missing:
            raise RuleError(f"{self.name}: missing parameter(s) {', '.join(sorted(missing))}")
        for key, kind in self.params.items():
            if key in spec and (
                not isinstance(spec[key], kind) or (isinstance(spec[key], bool) and kind is not bool)
            ):
                raise RuleError(f"{self.name}: parameter {key!r} has the wrong type")
        self.spec = spec
        self.avro = avro
        self.base = base_type(avro)
        self.keys = keys
        if self.accepts is not None and self.base not in self.accepts:
            raise RuleError(
                f"{self.name} cannot apply to type {self.base} (accepts {', '.join(sorted(self.accepts))})"
            )
        self.check()

    def check(self) -> None:
        """Validate parameters beyond their types."""

    def output_type(self) -> AvroType:
        return self.avro

    def build(self) -> Apply:
        raise NotImplementedError

    def _int(self, key: str, default: int, lo: int, hi: int) -> int:
        value = self.spec.get(key, default)
        if not lo <= value <= hi:
            raise RuleError(f"{self.name}: {key} must be between {lo} and {hi}")
        return int(value)

    def _key(self) -> tuple[str, int]:
        name = self.spec.get("key", "default")
        try:
            version, _ = self.keys.active(name)
        except KeyError:
            raise RuleError(f"{self.name}: key {name!r} is not in the keys file") from None
        return name, version


REGISTRY: dict[str, type[Operation]] = {}


def register(cls: type[Operation]) -> type[Operation]:
    REGISTRY[cls.name] = cls
    return cls


@register
class Keep(Operation):
    name = "keep"
    generated = False

    def build(self) -> Apply:
        return lambda value, ctx: value


@register
class Drop(Operation):
    """Handled by the plan: the field leaves the derived schema."""

    name = "drop"

    def build(self) -> Apply:
        raise AssertionError("drop has no per-value function")


@register
class Redact(Operation):
    name = "redact"
    params: ClassVar[dict[str, type | tuple[type, ...]]] = {"replacement": str}

    def output_type(self) -> AvroType:
        return "string" if self.base == "string" else ["null", self.avro]

    def build(self) -> Apply:
        if self.base == "string":
            constant = self.spec.get("replacement", "[REDACTED]")
            return lambda value, ctx: constant
        return lambda value, ctx: None


@register
class Mask(Operation):
    name = "mask"
    accepts = frozenset({"string"})
    params: ClassVar[dict[str, type | tuple[type, ...]]] = {
        "keep_first": int,
        "keep_last": int,
        "char": str,
        "mode": str,
    }

    def check(self) -> None:
        self.first = self._int("keep_first", 0, 0, 64)
        self.last = self._int("keep_last", 0 if self.spec.get("mode") == "email" else 4, 0, 64)
        self.char = self.spec.get("char", "*")
        if len(self.char) != 1:
            raise RuleError("mask: char must be one character")
        if self.spec.get("mode", "chars") not in ("chars", "email"):
            raise RuleError("mask: mode must be chars or email")

    def build(self) -> Apply:
        first, last, char = self.first, self.last, str(self.char)

        def chars(value: str) -> str:
            n = len(value)
            if first + last >= n:
                return char * n  # too short to keep anything without revealing it all
            return value[:first] + char * (n - first - last) + (value[n - last :] if last else "")

        if self.spec.get("mode") == "email":

            def email(value: str, ctx: Any) -> str:
                local, at, domain = value.rpartition("@")
                if not at:
                    return chars(value)
                keep = max(first, 1) if len(local) > 1 else 0
                return local[:keep] + char * max(len(local) - keep, 1) + "@" + domain

            return email
        return lambda value, ctx: chars(value)


_NORMALIZERS: dict[str, Callable[[str], str]] = {
    "none": lambda s: s,
    "lower": lambda s: s.strip().lower(),
    "digits": lambda s: re.sub(r"\D", "", s),
    "trim": str.strip,
}


@register
class Hmac(Operation):
    """Keyed pseudonym ``hm1.<key>.<version>.<base64url>``: deterministic per key version, not reversible."""

    name = "hmac"
    accepts = frozenset({"string", "bytes", "int", "long"})
    params: ClassVar[dict[str, type | tuple[type, ...]]] = {"key": str, "normalize": str, "length": int}

    def check(self) -> None:
        self.key_name, self.version = self._key()
        if self.spec.get("normalize", "none") not in _NORMALIZERS:
            raise RuleError(f"hmac: normalize must be one of {', '.join(_NORMALIZERS)}")
        self.length = self._int("length", 16, 8, 32)

    def output_type(self) -> AvroType:
        return "string"

    def build(self) -> Apply:
        secret = self.keys.derive(self.key_name, self.version, "hmac")
        prefix = f"hm1.{self.key_name}.{self.version}."
        normalize = _NORMALIZERS[self.spec.get("normalize", "none")]
        length, mac = self.length, HmacSha256(secret).mac
        is_bytes = self.base == "bytes"

        def pseudonym(value: Any, ctx: Any) -> str:
            digest = mac(value if is_bytes else normalize(str(value)).encode())
            return prefix + b64url(digest[:length])

        return pseudonym


_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


class HmacSha256:
    """HMAC-SHA256 (RFC 2104) under one key, keyed once at build time.

    ``mac(message)`` equals ``hmac.digest(key, message, "sha256")``. The padded key's two blocks are
    hashed once, and each value only copies the two hash states. That is cheaper than keying per value,
    and cheaper than copying an ``hmac.HMAC``, whose ``copy`` runs in Python (bench/README.md).
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > 64:  # the block size: longer keys are hashed first
            key = hashlib.sha256(key).digest()
        block = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(block.translate(_IPAD))
        self._outer = hashlib.sha256(block.translate(_OPAD))

    def mac(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def b64url(data: bytes) -> str:
    """Unpadded base64url text (RFC 4648 section 5), as tokens and pseudonyms carry it."""
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=").decode()


def hmac_tokens(keys: Keys, key_name: str, length: int = 16) -> Callable[[str], str]:
    """The tokens ``hmac`` gives values under the active version of ``key_name`` (for scan pseudonyms)."""
    version, _ = keys.active(key_name)
    mac = HmacSha256(keys.derive(key_name, version, "hmac")).mac
    prefix = f"hm1.{key_name}.{version}."

    def token(value: str) -> str:
        return prefix + b64url(mac(value.encode())[:length])

    return token


@register
class Tokenize(Operation):
    """Reversible deterministic encryption (AES-SIV): ``tk1.<key>.<version>.<base64url>``."""

    name = "tokenize"
    accepts = frozenset({"string"})
    params: ClassVar[dict[str, type | tuple[type, ...]]] = {"key": str}

    def check(self) -> None:
        self.key_name, self.version = self._key()

    def output_type(self) -> AvroType:
        return "string"

    def build(self) -> Apply:
        siv = AESSIV(self.keys.derive(self.key_name, self.version, "tokenize", 64))
        prefix = f"tk1.{self.key_name}.{self.version}."
        aad = [prefix.encode()]

        def token(value: str, ctx: Any) -> str:
            return prefix + b64url(siv.encrypt(value.encode(), aad))

        return token


class TokenError(Exception):
    """A token that is malformed, tampered with, or from a key not in the keys file."""


def detokenize(keys: Keys, token: str) -> str:
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != "tk1" or not parts[2].isdigit():
        raise TokenError("not a stream-anon token (expected tk1.<key>.<version>.<data>)")
    _, name, version, data = parts
    try:
        siv = AESSIV(keys.derive(name, int(version), "tokenize", 64))
    except KeyError:
        raise TokenError(f"key {name}.{version} is not in the keys file") from None
    try:
        raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
        return siv.decrypt(raw, [f"tk1.{name}.{version}.".encode()]).decode()
    except (InvalidTag, binascii.Error, ValueError, UnicodeDecodeError):
        raise TokenError("token does not verify: tampered, truncated or from another key") from None


_TIME_UNITS = ("minute", "hour", "day", "month")
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
            self.v4 = self._int("ipv4_prefix", 24, 0, 32)
            self.v6 = self._int("ipv6_prefix", 48, 0, 128)
        elif method == "time":
            if self.spec.get("unit", "day") not in _TIME_UNITS:
                raise RuleError(f"generalize time: unit must be one of {', '.join(_TIME_UNITS)}")
            if self.base != "string" and logical_type(self.avro) not in _TIME_SCALE:
                raise RuleError(
                    "generalize time needs a timestamp-millis/micros logical type or an ISO string"
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
        scale = _TIME_SCALE[logical_type(self.avro) or "timestamp-millis"]
        step = {"minute": 60, "hour": 3600, "day": 86400}.get(unit)
        if step is not None:
            size = step * scale
            return lambda value, ctx: value - value % size

        def month(value: int, ctx: Any) -> int:
            moment = datetime.fromtimestamp(value / scale, tz=UTC)
            return int(_truncate(moment, "month").timestamp()) * scale

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
        mac = HmacSha256(self.keys.derive(self.key_name, self.version, "date_shift")).mac
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
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


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


@register
class Scan(Operation):
    """Free text: detection is batched by the plan; ``build`` is not used per value."""

    name = "scan"
    accepts = frozenset({"string"})
    generated = False  # the text is the user's: the verifier checks what remains of it
    params: ClassVar[dict[str, type | tuple[type, ...]]] = {
        "entities": list,
        "threshold": (int, float),
        "replace": str,
        "key": str,
    }

    def check(self) -> None:
        if self.spec.get("replace", "tag") not in ("tag", "hmac", "remove"):
            raise RuleError("scan: replace must be tag, hmac or remove")
        threshold = self.spec.get("threshold", 0.5)
        if not 0 <= threshold <= 1:
            raise RuleError("scan: threshold must be between 0 and 1")
        entities = self.spec.get("entities")
        if entities is not None and (not entities or not all(isinstance(e, str) for e in entities)):
            raise RuleError("scan: entities must be a non-empty list of entity names")
        if self.spec.get("replace") == "hmac":
            self.key_name, self.version = self._key()

    def build(self) -> Apply:
        raise AssertionError("scan is applied by the plan in batches")
