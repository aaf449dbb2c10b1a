"""The published aggregate record: its Avro schema (the same as ``schemas/aggregates.avsc``) and encoder."""

from __future__ import annotations

from typing import Any

import fastavro

from stream_anon.schema import strip_logical_types
from stream_anon.wire import encode

AGGREGATE_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Aggregate",
    "namespace": "stream_anon.aggregates",
    "doc": (
        "One cohort of one tumbling window, published by stream-anon aggregate. Every figure carries "
        "differential-privacy noise (docs/privacy.md); cohorts whose noisy record count fell under "
        "suppress_below are not published."
    ),
    "anon.default": "keep",
    "fields": [
        {
            "name": "window_start",
            "type": {"type": "long", "logicalType": "timestamp-millis"},
            "doc": "Inclusive start of the window (event time, UTC).",
        },
        {
            "name": "window_end",
            "type": {"type": "long", "logicalType": "timestamp-millis"},
            "doc": "Exclusive end of the window.",
        },
        {
            "name": "cohort",
            "type": {"type": "map", "values": ["null", "string"]},
            "doc": "The grouping fields and their values.",
        },
        {
            "name": "records",
            "type": "long",
            "doc": "Noisy count of records (after contribution bounding); at least suppress_below.",
        },
        {
            "name": "users",
            "type": "long",
            "doc": "Noisy count of distinct pseudonymous users, clamped to [0, records].",
        },
        {
            "name": "sums",
            "type": {"type": "map", "values": "double"},
            "doc": "Noisy sum of each bounded numeric field (values clamped to the field's bounds).",
        },
        {
            "name": "means",
            "type": {"type": "map", "values": ["null", "double"]},
            "doc": (
                "Noisy sum divided by noisy record count, clamped to the field's bounds; "
                "null when the count is 0."
            ),
        },
        {
            "name": "epsilon",
            "type": "double",
            "doc": "Epsilon the whole window's release spent (all figures, all cohorts).",
        },
        {
            "name": "delta",
            "type": "double",
            "doc": "Delta of the window's release (non-zero only when the cohorts come from the data).",
        },
        {
            "name": "figure_epsilon",
            "type": {"type": "map", "values": "double"},
            "doc": (
                "Epsilon of each figure: records, users, sum.<field> "
                "(a mean is derived from its sum and the count)."
            ),
        },
        {
            "name": "max_records_per_user",
            "type": "int",
            "doc": "Contribution bound: records kept per user per window.",
        },
        {
            "name": "suppress_below",
            "type": "long",
            "doc": "Cohorts whose noisy record count fell under this were not published.",
        },
    ],
}

PARSED_AGGREGATE_SCHEMA: Any = fastavro.parse_schema(strip_logical_types(AGGREGATE_SCHEMA))


def record_key(record: dict[str, Any]) -> bytes:
    """The Kafka key of an aggregate: window start and cohort, so a compacted topic keeps one per cohort."""
    cohort = ",".join(f"{k}={v}" for k, v in sorted(record["cohort"].items()))
    return f"{record['window_start']}|{cohort}".encode()


class AggregateEncoder:
    """Frames aggregate records after a header (single-object fingerprint or Confluent schema id)."""

    def __init__(self, header: bytes) -> None:
        self.header = header

    def __call__(self, record: dict[str, Any]) -> bytes:
        return encode(self.header, PARSED_AGGREGATE_SCHEMA, record)
