"""Framing is detected per message from its first bytes; every malformed frame has a reason."""

from __future__ import annotations

import json

import fastavro
import pytest

from stream_anon.schemas import fingerprint
from stream_anon.wire import (
    Framing,
    WireError,
    WireErrorKind,
    decode_payload,
    encode,
    parse_frame,
    schema_ref,
)

SCHEMA = {
    "type": "record",
    "name": "T",
    "fields": [
        {"name": "a", "type": "string"},
        {"name": "t", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}


def test_the_avro_spec_fingerprint_of_null_is_crc64_little_endian() -> None:
    # Avro's specification: CRC-64-AVRO("null") == 0x63DD24E7CC258F8A, written little-endian
    import fastavro.schema

    canonical = fastavro.schema.to_parsing_canonical_form(fastavro.parse_schema("null"))
    assert bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO")) == (
        0x63DD24E7CC258F8A
    ).to_bytes(8, "little")


def test_confluent_framing_is_zero_then_big_endian_id() -> None:
    framing, ident, start = parse_frame(b"\x00\x00\x00\x01\x2a" + b"body")
    assert (framing, schema_ref(framing, ident), start) == (Framing.CONFLUENT, "id:298", 5)


def test_single_object_framing_is_c301_then_fingerprint() -> None:
    fp = fingerprint(SCHEMA)
    framing, ident, start = parse_frame(b"\xc3\x01" + fp + b"body")
    assert (framing, ident, start) == (Framing.SINGLE_OBJECT, fp, 10)
    assert schema_ref(framing, ident) == "fp:" + fp.hex()


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (None, WireErrorKind.EMPTY_VALUE),
        (b"", WireErrorKind.EMPTY_VALUE),
        (b"\x00\x00\x01", WireErrorKind.UNKNOWN_FRAMING),
        (b"\xc3\x01\x00", WireErrorKind.UNKNOWN_FRAMING),
        (b'{"json": true}', WireErrorKind.UNKNOWN_FRAMING),
        (b"\xc3\x02" + b"\x00" * 12, WireErrorKind.UNKNOWN_FRAMING),
    ],
)
def test_malformed_frames_name_their_reason(value: bytes | None, kind: WireErrorKind) -> None:
    with pytest.raises(WireError) as caught:
        parse_frame(value)
    assert caught.value.kind is kind


def test_logical_types_decode_to_their_underlying_values() -> None:
    parsed = fastavro.parse_schema(
        {**SCHEMA, "fields": [{"name": "a", "type": "string"}, {"name": "t", "type": "long"}]}
    )
    value = encode(b"\xc3\x01" + fingerprint(SCHEMA), parsed, {"a": "x", "t": 1_700_000_000_000})
    assert decode_payload(value, 10, parsed, "fp") == {"a": "x", "t": 1_700_000_000_000}


@pytest.mark.parametrize("cut", [1, 3, 5])
def test_truncated_and_padded_bodies_are_undecodable(cut: int) -> None:
    parsed = fastavro.parse_schema(
        {**SCHEMA, "fields": [{"name": "a", "type": "string"}, {"name": "t", "type": "long"}]}
    )
    value = encode(b"\xc3\x01" + b"\x00" * 8, parsed, {"a": "hello world", "t": 123456789})
    for broken in (value[:-cut], value + b"\x00" * cut):
        with pytest.raises(WireError) as caught:
            decode_payload(broken, 10, parsed, "fp")
        assert caught.value.kind is WireErrorKind.UNDECODABLE
        assert "hello" not in str(caught.value)


def test_error_messages_never_echo_the_bytes() -> None:
    with pytest.raises(WireError) as caught:
        parse_frame(json.dumps({"email": "jane@example.com"}).encode())
    assert "jane" not in str(caught.value)


def test_every_wire_error_kind_maps_to_the_dead_letter_reason_of_the_same_name() -> None:
    from stream_anon.pipeline import WIRE_REASONS

    assert {kind.value: reason.value for kind, reason in WIRE_REASONS.items()} == {
        kind.value: kind.value for kind in WireErrorKind
    }
