"""The benchmark's bound on case 3 (case 8) makes the keyed calls it claims to, and nothing else."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import fastavro

from bench.data import HEADER_BYTES, generate
from bench.proc import CodecFloor, KeyedFloor
from stream_anon.config import Settings
from stream_anon.records import InputRecord, Sanitized
from stream_anon.schemas import open_resolver
from stream_anon.wire import parse_frame

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
KEYED = {"user.user_id", "user.email", "user.signup_date", "device_id"}
DAY_MS = 86_400_000


def _fields(value: bytes, parsed: Any) -> dict[str, Any]:
    """The record's top-level fields and its user's, by dotted path."""
    body = io.BytesIO(value)
    body.seek(HEADER_BYTES)
    record = fastavro.schemaless_reader(body, parsed, None)
    assert isinstance(record, dict)
    user = record.pop("user")
    return {**record, **{f"user.{name}": v for name, v in user.items()}}


def _through(floor: CodecFloor, values: list[bytes]) -> list[bytes]:
    outcomes = floor.process([InputRecord("raw", 0, i, 0, b"k", v) for i, v in enumerate(values)])
    assert all(isinstance(o, Sanitized) for o in outcomes)
    return [o.value for o in outcomes if isinstance(o, Sanitized)]


def test_the_bound_rewrites_exactly_the_keyed_fields_and_the_record_still_encodes() -> None:
    values = generate(40, seed=3).values
    resolver = open_resolver(Settings(schemas_dir=SCHEMAS))
    framing, ident, _ = parse_frame(values[0])
    parsed = resolver.lookup(framing, ident).parsed
    bound = KeyedFloor(resolver)

    with_email = 0
    for raw_value, out_value in zip(values, _through(bound, values), strict=True):
        raw, out = _fields(raw_value, parsed), _fields(out_value, parsed)
        changed = {path for path in raw if raw[path] != out[path]}
        if raw["user.email"] is None:
            assert changed == KEYED - {"user.email"}
        else:
            with_email += 1
            assert changed == KEYED
            assert len(out["user.email"]) == 64  # a whole HMAC-SHA256, in hex
        assert len(out["user.user_id"]) == 64
        shift = out["user.signup_date"] - raw["user.signup_date"]
        assert shift % DAY_MS == 0 and 1 <= abs(shift // DAY_MS) <= 15
    assert with_email > 0
    assert bound.stage_seconds["transform"] > 0


def test_the_codec_floor_gives_back_the_bytes_it_read() -> None:
    values = generate(20, seed=3).values
    assert _through(CodecFloor(open_resolver(Settings(schemas_dir=SCHEMAS))), values) == values
