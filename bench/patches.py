"""Candidate speed-ups, applied by monkeypatching inside a benchmark process only.

Each one is a change proposed for ``stream_anon/`` (the report names file and function); measuring it
here first says whether it is worth making. ``bench/hotspots.py`` runs the pipeline with and without
them, and ``bench/run.sh --patch NAME`` runs the Kafka cases with them. A patch is applied before the
plan is compiled, since operations build their per-value functions at compile time.
"""

from __future__ import annotations

import hmac as _hmac
import ipaddress
import socket
from collections.abc import Callable
from typing import Any


class _OneShot:
    __slots__ = ("_digest",)

    def __init__(self, digest: bytes) -> None:
        self._digest = digest

    def digest(self) -> bytes:
        return self._digest


class _HmacModule:
    """``hmac`` as operations.py uses it, with ``new(...).digest()`` computed by the one-shot C call."""

    compare_digest = staticmethod(_hmac.compare_digest)
    digest = staticmethod(_hmac.digest)

    @staticmethod
    def new(key: bytes, msg: bytes, digestmod: Any) -> _OneShot:
        return _OneShot(_hmac.digest(key, msg, digestmod))


Undo = Callable[[], None]


def hmac_oneshot() -> Undo:
    """operations.py ``Hmac.build`` / ``Generalize._build_date_shift``: ``hmac.digest(secret, data,
    "sha256")`` (one C call through OpenSSL) instead of ``hmac.new(secret, data, sha256).digest()``
    (an HMAC object built in Python per value)."""
    from stream_anon.rules import operations

    operations.hmac = _HmacModule  # type: ignore[assignment]
    return lambda: setattr(operations, "hmac", _hmac)


def _ipv6_prefix(value: str, bits: int) -> str | None:
    """``ip_network(f"{ip}/{bits}", strict=False)`` for an IPv6 address, with the C socket functions."""
    try:
        packed = socket.inet_pton(socket.AF_INET6, value)
    except OSError:
        return None
    masked = (int.from_bytes(packed, "big") & ((1 << 128) - (1 << (128 - bits)))).to_bytes(16, "big")
    if masked[:10] == bytes(10) and masked[10:12] in (b"\0\0", b"\xff\xff"):
        return None  # IPv4-mapped or -compatible: inet_ntop prints a dotted quad; leave it to ipaddress
    return f"{socket.inet_ntop(socket.AF_INET6, masked)}/{bits}"


def ipv6_fast() -> Undo:
    """operations.py ``Generalize._build_ip_prefix``: IPv6 through ``socket.inet_pton``/``inet_ntop`` and
    integer masking, as IPv4 already is, instead of ``ipaddress`` (about 20 us per value)."""
    from stream_anon.rules import operations

    original: Callable[[Any], Any] = operations.Generalize._build_ip_prefix

    def build(self: Any) -> Any:
        slow = original(self)
        v6 = self.v6

        def prefix(value: str, ctx: Any) -> str:
            if ":" in value:
                fast = _ipv6_prefix(value, v6)
                if fast is not None:
                    return fast
            result: str = slow(value, ctx)
            return result

        return prefix

    operations.Generalize._build_ip_prefix = build  # type: ignore[method-assign]
    return lambda: setattr(operations.Generalize, "_build_ip_prefix", original)


def check_ipv6_fast(values: list[str], bits: int = 48) -> int:
    """How many of ``values`` the fast path renders differently from ``ipaddress`` (must be 0)."""
    differ = 0
    for value in values:
        fast = _ipv6_prefix(value, bits)
        if fast is not None and fast != str(ipaddress.ip_network(f"{value}/{bits}", strict=False)):
            differ += 1
    return differ


def pii_getters() -> Undo:
    """plan.py ``_getter``: for a path through plain records (no ``[]``/``{}``), a straight chain of
    ``dict.get`` instead of the general list-of-lists walk, for ``Plan.pii_values`` (the verifier and
    the scan's record-aware detection call it once per record)."""
    from stream_anon.rules import plan

    general = plan._getter

    def getter(name: str, path: str) -> Callable[[dict[str, Any]], list[Any]]:
        if "[]" in path or "{}" in path:
            return general(name, path)
        parts = tuple(path.split("."))
        fallback = general(name, path)

        def get(record: dict[str, Any]) -> list[Any]:
            value: Any = record
            for part in parts:
                if value.__class__ is not dict:
                    return []
                value = value.get(part)
            if value is None:
                return []
            if value.__class__ is dict or value.__class__ is list:
                return fallback(record)
            return [value]

        return get

    plan._getter = getter
    return lambda: setattr(plan, "_getter", general)


PATCHES: dict[str, Callable[[], Undo]] = {
    "hmac-oneshot": hmac_oneshot,
    "ipv6-fast": ipv6_fast,
    "pii-getters": pii_getters,
}


def apply(names: list[str]) -> list[Undo]:
    for name in names:
        if name not in PATCHES:
            raise SystemExit(f"unknown patch {name!r}; known: {', '.join(PATCHES)}")
    return [PATCHES[name]() for name in names]
