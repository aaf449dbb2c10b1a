"""Every dead-letter reason, each produced by a crafted bad record on the real broker, with its headers."""

from __future__ import annotations

import base64
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from kafkatools import Framer, create_topics, produce, read_all, unique

from stream_anon.app import build_pipeline
from stream_anon.config import Settings
from stream_anon.worker import Worker

pytestmark = pytest.mark.broker

GOOD = {
    "type": "record",
    "name": "Ticket",
    "namespace": "test.dlq",
    "fields": [
        {"name": "id", "type": "string", "anon": "keep"},
        {"name": "email", "type": "string", "pii": "EMAIL_ADDRESS", "anon": {"op": "mask", "mode": "email"}},
        {
            "name": "ip",
            "type": "string",
            "pii": "IP_ADDRESS",
            "anon": {"op": "generalize", "method": "ip_prefix", "ipv4_prefix": 24},
        },
        {"name": "note", "type": "string", "anon": "keep"},
        {"name": "blob", "type": "string", "anon": "keep"},
    ],
}
UNANNOTATED = {
    **GOOD,
    "name": "Unannotated",
    "fields": [*GOOD["fields"][:2], {"name": "phone", "type": "string"}],
}
INVALID_RULES = {
    **GOOD,
    "name": "BadRules",
    "fields": [{"name": "id", "type": "string", "anon": {"op": "mask", "keep_first": -3}}],
}
UNKNOWN = {**GOOD, "name": "NotInTheDirectory"}


def record(i: int, **overrides: Any) -> dict[str, Any]:
    return {
        "id": f"t{i}",
        "email": f"user{i}@example.com",
        "ip": "203.0.113.77",
        "note": "fine",
        "blob": "x",
        **overrides,
    }


@pytest.fixture
def schemas_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "schemas"
    directory.mkdir()
    for name, schema in (("good", GOOD), ("unannotated", UNANNOTATED), ("bad-rules", INVALID_RULES)):
        (directory / f"{name}.avsc").write_text(json.dumps(schema))
    return directory


def run_worker(settings: Settings, seconds_idle: float = 4.0) -> None:
    worker = Worker(settings, build_pipeline(settings))
    thread = threading.Thread(target=worker.run, kwargs={"until_idle_s": seconds_idle})
    thread.start()
    thread.join(timeout=180)
    assert not thread.is_alive(), "worker did not stop"


def test_each_reason_lands_in_the_dead_letter_topic_with_its_headers(broker: str, schemas_dir: Path) -> None:
    raw, out, dlq = unique("raw"), unique("out"), unique("dlq")
    create_topics([raw, dlq], partitions=1)
    # the output topic refuses records over 2 KB, so one oversized sanitized record is rejected by the broker
    create_topics([out], partitions=1, config={"max.message.bytes": "2048"})
    good = Framer(GOOD)
    crafted: list[tuple[str, bytes]] = [
        ("sanitized", good(record(0))),
        ("empty_value", b""),
        ("unknown_framing", b"\x7fnot avro"),
        ("unknown_schema", Framer(UNKNOWN)(record(1))),
        ("undecodable", good(record(2))[:-3]),
        (
            "unannotated_field",
            Framer(UNANNOTATED)({"id": "u", "email": "a@b.co", "phone": "+1 415 555 0100"}),
        ),
        ("invalid_rules", Framer(INVALID_RULES)({"id": "r"})),
        ("rule_failed", good(record(3, ip="not-an-ip-address"))),
        ("leak_detected", good(record(4, note="write to jane.doe@example.org please"))),
        # incompressible, so the compressed batch still exceeds the topic's limit
        ("produce_rejected", good(record(5, blob=base64.b64encode(os.urandom(8000)).decode()))),
        ("sanitized", good(record(6))),
    ]
    produce(raw, [(f"k{i}".encode(), value) for i, (_, value) in enumerate(crafted)], partition=0)

    settings = Settings(
        input_topics=[raw],
        output_topic=out,
        dlq_topic=dlq,
        group_id=unique("g"),
        schemas_dir=schemas_dir,
        metrics_port=0,
        output_key="keep",
        bootstrap_servers=broker,
    )
    run_worker(settings)

    sanitized = read_all(out)
    dead = read_all(dlq)
    assert sorted(int(r.headers["stream-anon.source.offset"]) for r in sanitized) == [0, 10]
    by_offset = {int(r.headers["stream-anon.source.offset"]): r for r in dead}
    expected = {i: reason for i, (reason, _) in enumerate(crafted) if reason != "sanitized"}
    assert {i: r.headers["stream-anon.reason"] for i, r in by_offset.items()} == expected
    for offset, r in by_offset.items():
        assert r.value == crafted[offset][1], "the original bytes are kept for replay"
        assert r.key == f"k{offset}".encode()
        assert r.headers["stream-anon.source.topic"] == raw
        assert r.headers["stream-anon.source.partition"] == "0"
        assert r.headers["stream-anon.error.class"]
        assert r.headers["stream-anon.version"]
        assert "jane.doe" not in json.dumps(r.headers)
        assert "example.com" not in r.headers["stream-anon.error.message"]
    assert by_offset[3].headers["stream-anon.schema"].startswith("fp:")
    assert "phone" in by_offset[5].headers["stream-anon.schema.paths"]
    assert by_offset[7].headers["stream-anon.rule.path"] == "ip"
    assert by_offset[8].headers["stream-anon.leak.entity"] == "EMAIL_ADDRESS"
    assert by_offset[8].headers["stream-anon.leak.path"] == "note"


def test_a_tombstone_stays_a_null_value_in_the_dead_letter_topic(broker: str, schemas_dir: Path) -> None:
    """A replay of the dead letter recreates the tombstone (an empty value would be another record)."""
    raw, out, dlq = unique("raw"), unique("out"), unique("dlq")
    create_topics([raw, out, dlq], partitions=1)
    produce(raw, [(b"deleted-key", None), (b"empty", b"")], partition=0)
    settings = Settings(
        input_topics=[raw], output_topic=out, dlq_topic=dlq, group_id=unique("g"), schemas_dir=schemas_dir,
        metrics_port=0, output_key="keep", bootstrap_servers=broker,
    )  # fmt: skip
    run_worker(settings)
    dead = read_all(dlq)
    assert [(d.key, d.value, d.headers["stream-anon.reason"]) for d in dead] == [
        (b"deleted-key", None, "empty_value"),
        (b"empty", b"", "empty_value"),
    ]
