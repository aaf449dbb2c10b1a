"""`stream-anon audit` against the real broker: a topic seeded with clean and leaky records."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Producer
from kafkatools import BOOTSTRAP, Framer, create_topics, delete_topics, produce, unique

pytestmark = pytest.mark.broker

SANITIZED = {
    "type": "record",
    "name": "FeedbackOut",
    "namespace": "test.audit",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "user_token", "type": "string"},
        {"name": "comment", "type": "string"},
        {"name": "attrs", "type": {"type": "map", "values": "string"}},
    ],
}
CLEAN_COMMENTS = ["works fine", "checkout was quick", "the app crashes on start", "love the dark mode"]
# (field path, entity, comment, attrs) of the leaky records
LEAKY = [
    ("comment", "EMAIL_ADDRESS", "write to jane.whitfield@example.com", {}),
    ("comment", "EMAIL_ADDRESS", "or to ops@example.org please", {}),
    ("comment", "PHONE_NUMBER", "call +1 415 555 0132 after six", {}),
    ("attrs{}", "IBAN_CODE", "refund requested", {"iban": "DE89 3704 0044 0532 0130 00"}),
]
CLEAN = 36


def record(i: int, comment: str, attrs: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "id": f"fb-{i}",
        "user_token": f"tok_{i:012x}",
        "comment": comment,
        "attrs": attrs or {"channel": "app"},
    }


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    topic = unique("audit")
    create_topics([topic], partitions=2)
    frame = Framer(SANITIZED)
    values: list[tuple[bytes | None, bytes | None]] = [
        (None, frame(record(i, CLEAN_COMMENTS[i % len(CLEAN_COMMENTS)]))) for i in range(CLEAN)
    ]
    values += [
        (None, frame(record(100 + i, comment, attrs))) for i, (_, _, comment, attrs) in enumerate(LEAKY)
    ]
    values += [(None, b"\x01garbage"), (None, b"\xc3\x01" + bytes(8) + b"\x00")]  # framing, schema unknown
    produce(topic, values)
    # Records of an aborted transaction are never read (read_committed); a committed one ends the topic with
    # a transaction marker, which the audit must step over to finish.
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "transactional.id": unique("audit-tx")})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic, frame(record(900, "aborted: jane@example.com")), partition=0)
    producer.abort_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, frame(record(901, "committed and clean")), partition=0)
    producer.commit_transaction(30)

    directory = tmp_path_factory.mktemp("audit")
    (directory / "schemas").mkdir()
    (directory / "schemas" / "out.avsc").write_text(json.dumps(SANITIZED))
    config = directory / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "bootstrap_servers": BOOTSTRAP,
                "input_topics": ["unused.raw"],
                "output_topic": topic,
                "dlq_topic": "unused.dlq",
                "schemas_dir": "schemas",
                "log_format": "json",
                "log_level": "warning",
            }
        )
    )
    yield {"topic": topic, "config": config, "decoded": CLEAN + len(LEAKY) + 1}
    delete_topics([topic])


def audit(config: Path, *args: str) -> tuple[int, str, str]:
    command = [
        sys.executable,
        "-c",
        "from stream_anon.cli.audit import audit; audit()",
        "--config",
        str(config),
    ]
    done = subprocess.run([*command, *args], capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout, done.stderr


def test_counts_suspected_leaks_per_field_and_entity(seeded: dict[str, Any]) -> None:
    code, out, err = audit(seeded["config"], "--format", "json", "--no-ner")
    assert code == 1, err  # default --fail-above 0: any suspected leak fails
    report = json.loads(out)
    assert report["topic"] == seeded["topic"]
    assert report["complete"] is True
    assert report["decoded"] == seeded["decoded"]
    assert report["undecodable"] == {"unknown_framing": 1, "unknown_schema": 1}
    assert report["records_read"] == seeded["decoded"] + 2
    assert report["suspect_records"] == len(LEAKY)
    assert report["rate"] == pytest.approx(len(LEAKY) / seeded["decoded"])
    expected: dict[tuple[str, str], int] = {}
    for path, entity, _, _ in LEAKY:
        expected[(path, entity)] = expected.get((path, entity), 0) + 1
    assert {(f["path"], f["entity"]): f["records"] for f in report["findings"]} == expected
    for finding in report["findings"]:
        assert finding["rate"] == pytest.approx(finding["records"] / seeded["decoded"])
    everything = out + err
    assert "jane.whitfield@example.com" not in everything
    assert "DE89 3704 0044 0532 0130 00" not in everything
    assert "415 555 0132" not in everything


def test_exit_status_follows_the_threshold(seeded: dict[str, Any]) -> None:
    rate = len(LEAKY) / seeded["decoded"]
    assert audit(seeded["config"], "--no-ner", "--fail-above", f"{rate:.4f}")[0] == 0
    assert audit(seeded["config"], "--no-ner", "--fail-above", f"{rate / 2:.4f}")[0] == 1


def test_table_output_masks_examples(seeded: dict[str, Any]) -> None:
    code, out, _ = audit(seeded["config"], "--no-ner")
    assert code == 1
    assert "EMAIL_ADDRESS" in out and "j***@e***.com" in out
    assert "DE**" in out
    assert "FAIL" in out


def test_max_records_and_from_time(seeded: dict[str, Any]) -> None:
    code, out, _ = audit(seeded["config"], "--no-ner", "--format", "json", "--max-records", "5")
    assert json.loads(out)["records_read"] == 5
    code, out, _ = audit(
        seeded["config"], "--no-ner", "--format", "json", "--from-time", "2999-01-01T00:00:00"
    )
    assert code == 0
    assert json.loads(out)["records_read"] == 0


def test_a_missing_topic_is_an_error(seeded: dict[str, Any]) -> None:
    code, _, err = audit(seeded["config"], "--no-ner", "--topic", unique("missing"))
    assert code == 2
    assert "does not exist" in err


@pytest.mark.skipif(
    importlib.util.find_spec("stream_anon.detection.scanner") is None,
    reason="the NER scanner is not built yet",
)
def test_ner_finds_names_the_validated_detectors_cannot(seeded: dict[str, Any]) -> None:
    topic = unique("audit-ner")
    create_topics([topic], partitions=1)
    try:
        frame = Framer(SANITIZED)
        produce(
            topic,
            [
                (None, frame(record(1, "Jane Whitfield from Boston called twice"))),
                (None, frame(record(2, "works fine"))),
            ],
        )
        code, out, err = audit(seeded["config"], "--topic", topic, "--format", "json", "--fail-above", "1")
        assert code == 0, err
        report = json.loads(out)
        assert report["ner"] is True
        # NER also flags some ids as names; the name in the comment is what must be found.
        person = [f for f in report["findings"] if f["entity"] == "PERSON" and f["path"] == "comment"]
        assert [(f["records"], f["examples"]) for f in person] == [(1, ["J*** W***"])]
        assert "Whitfield" not in out
    finally:
        delete_topics([topic])
