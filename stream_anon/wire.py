"""Wire formats: detect a message's framing from its first bytes, decode it, encode sanitized records.

Two framings are read, chosen per message:

* Confluent: ``00`` + 4-byte big-endian schema id + Avro binary; the id is resolved by a Schema Registry.
* Avro single-object encoding: ``C3 01`` + 8-byte little-endian CRC-64-AVRO fingerprint + Avro binary;
  the fingerprint is resolved from a directory of ``.avsc`` files.

Logical types are read in their underlying representation (a timestamp-millis stays an int), so rules
see plain values and the per-record path builds no datetime objects.
"""

from __future__ import annotations

import io
from enum import StrEnum
from typing import Any

import fastavro

CONFLUENT_MAGIC = 0x00
SINGLE_OBJECT_MAGIC = b"\xc3\x01"


class Framing(StrEnum):
    CONFLUENT = "confluent"
    SINGLE_OBJECT = "single_object"


class WireErrorKind(StrEnum):
    """Why a message cannot be read. The pipeline maps each kind to its dead-letter ``Reason``."""

    EMPTY_VALUE = "empty_value"
    UNKNOWN_FRAMING = "unknown_framing"
    UNKNOWN_SCHEMA = "unknown_schema"
    INVALID_SCHEMA = "invalid_schema"
    UNDECODABLE = "undecodable"


class WireError(Exception):
    """A message cannot be read; ``kind`` says why. The message holds no record value."""

    def __init__(self, kind: WireErrorKind, message: str, schema_ref: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.schema_ref = schema_ref


def parse_frame(value: bytes | None) -> tuple[Framing, bytes, int]:
    """Return the framing, the schema reference bytes (id or fingerprint) and the payload's start offset."""
    if not value:
        raise WireError(WireErrorKind.EMPTY_VALUE, "record has no value")
    if value[0] == CONFLUENT_MAGIC:
        if len(value) < 5:
            raise WireError(WireErrorKind.UNKNOWN_FRAMING, "Confluent framing shorter than its 5-byte header")
        return Framing.CONFLUENT, value[1:5], 5
    if value[:2] == SINGLE_OBJECT_MAGIC:
        if len(value) < 10:
            raise WireError(
                WireErrorKind.UNKNOWN_FRAMING, "single-object encoding shorter than its 10-byte header"
            )
        return Framing.SINGLE_OBJECT, value[2:10], 10
    raise WireError(
        WireErrorKind.UNKNOWN_FRAMING,
        f"first byte 0x{value[0]:02x} is neither Confluent framing (0x00) nor single-object (0xc3 0x01)",
    )


def schema_ref(framing: Framing, ident: bytes) -> str:
    """The human-readable reference used in headers and logs: ``id:42`` or ``fp:<hex>``."""
    if framing is Framing.CONFLUENT:
        return f"id:{int.from_bytes(ident, 'big')}"
    return f"fp:{ident.hex()}"


def frame_header(framing: Framing, ident: bytes) -> bytes:
    if framing is Framing.CONFLUENT:
        return bytes([CONFLUENT_MAGIC]) + ident
    return SINGLE_OBJECT_MAGIC + ident


def decode_payload(value: bytes, start: int, parsed_schema: Any, ref: str) -> dict[str, Any]:
    """Decode the Avro binary body; every way it can fail becomes ``undecodable``."""
    buffer = io.BytesIO(value)
    buffer.seek(start)
    try:
        record = fastavro.schemaless_reader(buffer, parsed_schema, None)
    except RecursionError:
        raise WireError(
            WireErrorKind.UNDECODABLE, "value nests deeper than the decoder allows", ref
        ) from None
    except Exception as exc:  # fastavro raises many types on corrupt input (EOFError, ValueError, ...)
        raise WireError(
            WireErrorKind.UNDECODABLE,
            f"Avro body does not decode with the writer schema ({type(exc).__name__})",
            ref,
        ) from None
    if buffer.tell() != len(value):
        raise WireError(
            WireErrorKind.UNDECODABLE, f"{len(value) - buffer.tell()} bytes left after the record", ref
        )
    if not isinstance(record, dict):
        raise WireError(WireErrorKind.UNDECODABLE, "writer schema is not a record", ref)
    return record


def encode(header: bytes, parsed_schema: Any, record: dict[str, Any]) -> bytes:
    """Encode a record after its frame header. Raises ``ValueError``/``TypeError`` when it does not fit."""
    buffer = io.BytesIO()
    buffer.write(header)
    fastavro.schemaless_writer(buffer, parsed_schema, record)
    return buffer.getvalue()
