"""Records and outcomes: what the pipeline takes in and gives out, and the dead-letter reasons and headers.

A leaf module (it imports nothing from stream_anon but the version), so every stage can name these types
without importing another stage. The dead-letter record keeps the original key and value bytes, so it can be
replayed once the cause is fixed. Headers never carry record values: messages are written by this code from
types and paths only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from stream_anon import __version__


class InputRecord(NamedTuple):
    """One consumed message, independent of the Kafka client. (A named tuple: one is built per record,
    at a quarter of a frozen dataclass's cost.)"""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    replays: int = 0
    """How many times ``stream-anon dlq replay`` has put this record back (its replay count header)."""


class Sanitized(NamedTuple):
    """A record ready for the output topic: the encoded sanitized value, and which writer schema it had."""

    source: InputRecord
    value: bytes
    schema_ref: str


class Reason(StrEnum):
    """Why a record went to the dead-letter topic. Documented in docs/dead-letter.md."""

    EMPTY_VALUE = "empty_value"
    """The record has no value (a tombstone or an empty payload)."""
    UNKNOWN_FRAMING = "unknown_framing"
    """The first bytes are neither Confluent framing (00) nor Avro single-object encoding (C3 01)."""
    UNKNOWN_SCHEMA = "unknown_schema"
    """The schema id or fingerprint is not known to the registry or the schemas directory."""
    INVALID_SCHEMA = "invalid_schema"
    """The writer schema does not parse (bad JSON, unknown named type, references to files or URLs)."""
    UNDECODABLE = "undecodable"
    """The bytes do not decode with the writer schema (truncated, corrupt, trailing bytes)."""
    UNANNOTATED_FIELD = "unannotated_field"
    """The writer schema has a field that no annotation, record default or tag policy covers."""
    INVALID_RULES = "invalid_rules"
    """The writer schema's annotations are invalid (bad parameter, wrong type, missing key)."""
    RULE_FAILED = "rule_failed"
    """A rule raised on this record's value (for example an IP field holding no IP address)."""
    LEAK_DETECTED = "leak_detected"
    """The verifier found PII in the sanitized record; entity and path are in the headers."""
    ENCODE_FAILED = "encode_failed"
    """The sanitized record does not encode with the derived schema."""
    PRODUCE_REJECTED = "produce_rejected"
    """The broker refused the sanitized record (for example larger than the topic's max.message.bytes)."""
    DERIVED_SCHEMA_REJECTED = "derived_schema_rejected"
    """The schema registry refused this writer schema's derived schema (incompatible with the subject's
    earlier versions, or not registered while auto_register_derived is off)."""


HEADER_PREFIX = "stream-anon."
"""Every dead-letter header name starts with this."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record that could not be sanitized, with the reason."""

    source: InputRecord
    reason: Reason
    error_class: str
    message: str
    schema_ref: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def headers(self) -> list[tuple[str, bytes]]:
        src = self.source
        pairs = [
            ("reason", self.reason.value),
            ("error.class", self.error_class),
            ("error.message", self.message[:1000]),
            ("source.topic", src.topic),
            ("source.partition", str(src.partition)),
            ("source.offset", str(src.offset)),
            ("source.timestamp", str(src.timestamp_ms)),
            ("version", __version__),
        ]
        if self.schema_ref is not None:
            pairs.append(("schema", self.schema_ref))
        if src.replays:
            pairs.append(("replay.count", str(src.replays)))
        headers = [(HEADER_PREFIX + name, value.encode("utf-8")) for name, value in pairs]
        # extras carry their full header names (stream-anon.leak.entity, ...)
        headers.extend((name, value.encode("utf-8")) for name, value in self.extra.items())
        return headers


Outcome = Sanitized | DeadLetter
"""What the pipeline gives for each input record, in order."""


# Headers added by the dead-letter operations (stream_anon.dlq): a replayed record carries its replay count
# to the raw topic, and the worker copies it onto the record's next dead letter; a sealed dead letter names
# the scheme and the key version that sealed its key and value.
REPLAY_COUNT_HEADER = HEADER_PREFIX + "replay.count"
SEAL_HEADER = HEADER_PREFIX + "seal"
SEAL_KEY_HEADER = HEADER_PREFIX + "seal.key"
SEAL_VERSION_HEADER = HEADER_PREFIX + "seal.version"
