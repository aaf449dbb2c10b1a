"""Confluent framing through a Schema Registry, next to single-object records, on the real broker.

The registry here is ``StandInRegistry`` (tests/registrystub.py), a stand-in implementing only the
endpoints the worker calls; the broker is real.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from kafkatools import REPO, Framer, create_topics, produce, read_all, unique
from registrystub import StandInRegistry

from stream_anon.app import build_pipeline
from stream_anon.config import Settings
from stream_anon.datagen import generate_feedback
from stream_anon.keys import Keys
from stream_anon.schemas import parse_writer_schema
from stream_anon.wire import Framing, decode_payload, encode, frame_header, parse_frame
from stream_anon.worker import Worker

pytestmark = pytest.mark.broker


def test_confluent_framed_records_resolve_through_the_registry(tmp_path: Path, broker: str) -> None:
    schema_text = (REPO / "schemas" / "feedback.avsc").read_text()
    keys = tmp_path / "keys.json"
    Keys.generate().save(keys)
    raw, out, dlq = unique("raw"), unique("out"), unique("dlq")
    create_topics([raw, out, dlq], partitions=2)
    with StandInRegistry() as registry:
        schema_id = registry.register(f"{raw}-value", schema_text)
        writer = parse_writer_schema(schema_text, ref="test")
        header = frame_header(Framing.CONFLUENT, schema_id.to_bytes(4, "big"))
        records = generate_feedback(40, seed=5)
        confluent = [(None, encode(header, writer.parsed, r)) for r in records[:30]]
        unknown_id = [(None, frame_header(Framing.CONFLUENT, (999).to_bytes(4, "big")) + b"\x02")]
        single_object = [(None, Framer(json.loads(schema_text))(r)) for r in records[30:]]
        produce(raw, confluent + unknown_id + single_object)

        settings = Settings(
            input_topics=[raw], output_topic=out, dlq_topic=dlq, group_id=unique("g"),
            schemas_dir=REPO / "schemas", schema_registry_url=registry.url, keys_file=keys,
            metrics_port=0, output_key="drop",
        )  # fmt: skip
        pipeline = build_pipeline(settings)
        thread = threading.Thread(target=Worker(settings, pipeline).run, kwargs={"until_idle_s": 4.0})
        thread.start()
        thread.join(timeout=180)
        assert not thread.is_alive()

        sanitized = read_all(out)
        dead = read_all(dlq)
        assert len(sanitized) == 40
        assert [d.headers["stream-anon.reason"] for d in dead] == ["unknown_schema"]
        assert dead[0].headers["stream-anon.schema"] == "id:999"
        # the derived schema is registered under the sanitized topic's value subject
        assert f"{out}-value" in registry.subjects
        derived_id = registry.subjects[f"{out}-value"][0]
        derived = json.loads(registry.by_id[derived_id])
        assert "anon" not in json.dumps(derived)
        # every sanitized record is Confluent-framed with the derived schema's id and decodes with it
        parsed = parse_writer_schema(registry.by_id[derived_id], ref="derived").parsed
        for r in sanitized:
            framing, ident, start = parse_frame(r.value)
            assert framing is Framing.CONFLUENT and int.from_bytes(ident, "big") == derived_id
            record = decode_payload(r.value or b"", start, parsed, "derived")
            assert "name" not in record["user"]
