"""Confluent framing through the real Schema Registry, next to single-object records, on the real broker.

Producers write with confluent-kafka's ``AvroSerializer``; the sanitized topic is read back with
``AvroDeserializer`` (read_committed) and with Kafka's own Java console consumer.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from kafkatools import REPO, Framer, create_topics, produce, read_all, unique
from registrytools import client, java_console_consume, produce_avro, read_avro

from stream_anon.app import build_pipeline
from stream_anon.config import Settings
from stream_anon.datagen import generate_feedback
from stream_anon.keys import Keys
from stream_anon.wire import Framing, frame_header, parse_frame
from stream_anon.worker import Worker

pytestmark = pytest.mark.broker


def test_avro_serializer_records_resolve_through_the_real_registry(
    tmp_path: Path, broker: str, registry: str
) -> None:
    schema_text = (REPO / "schemas" / "feedback.avsc").read_text()
    keys = tmp_path / "keys.json"
    Keys.generate().save(keys)
    raw, out, dlq = unique("raw"), unique("out"), unique("dlq")
    create_topics([raw, out, dlq], partitions=2)
    records = generate_feedback(40, seed=5)
    produce_avro(raw, schema_text, records[:30])
    # an id the registry does not know: it answers 404 with error code 40403
    produce(raw, [(None, frame_header(Framing.CONFLUENT, (987_654).to_bytes(4, "big")) + b"\x02")])
    produce(raw, [(None, Framer(json.loads(schema_text))(r)) for r in records[30:]])

    settings = Settings(
        input_topics=[raw], output_topic=out, dlq_topic=dlq, group_id=unique("g"),
        schemas_dir=REPO / "schemas", schema_registry_url=registry, keys_file=keys,
        metrics_port=0, output_key="drop",
    )  # fmt: skip
    thread = threading.Thread(
        target=Worker(settings, build_pipeline(settings)).run, kwargs={"until_idle_s": 4}
    )
    thread.start()
    thread.join(timeout=180)
    assert not thread.is_alive()

    dead = read_all(dlq)
    assert [d.headers["stream-anon.reason"] for d in dead] == ["unknown_schema"]
    assert dead[0].headers["stream-anon.schema"] == "id:987654"
    # the derived schema is registered under the sanitized topic's value subject, annotations removed
    derived = client().get_latest_version(f"{out}-value")
    assert "anon" not in derived.schema.schema_str and '"pii"' not in derived.schema.schema_str
    sanitized = read_all(out)
    assert len(sanitized) == 40
    for r in sanitized:
        framing, ident, _ = parse_frame(r.value)
        assert framing is Framing.CONFLUENT and int.from_bytes(ident, "big") == derived.schema_id
    # an analytics consumer with the stock AvroDeserializer reads every sanitized record
    decoded = read_avro(out, expected=40)
    assert len(decoded) == 40
    assert all("name" not in record["user"] for record in decoded)
    assert {record["country"] for record in decoded} == {r["country"] for r in records}
    # and so does Kafka's own Java console consumer, read_committed
    count, stderr = java_console_consume(out)
    assert count == 40, stderr
