"""A v2 writer schema arriving mid-stream is picked up without a restart, each version with its own plan."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import fastavro
import pytest
from kafkatools import REPO, Framer, create_topics, produce, read_all, unique

from stream_anon.app import build_pipeline
from stream_anon.config import Settings
from stream_anon.datagen import generate_feedback
from stream_anon.schema import strip_logical_types
from stream_anon.wire import decode_payload, parse_frame
from stream_anon.worker import Worker

pytestmark = pytest.mark.broker


def test_v2_schema_mid_stream_without_restart(tmp_path: Path) -> None:
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    shutil.copy(REPO / "schemas" / "feedback.avsc", schemas / "feedback.avsc")
    v2_schema = json.loads((REPO / "schemas" / "feedback-v2.avsc").read_text())
    raw, out, dlq = unique("raw"), unique("out"), unique("dlq")
    create_topics([raw, out, dlq], partitions=1)
    keys = tmp_path / "keys.json"
    from stream_anon.keys import Keys

    Keys.generate().save(keys)
    settings = Settings(
        input_topics=[raw],
        output_topic=out,
        dlq_topic=dlq,
        group_id=unique("g"),
        schemas_dir=schemas,
        keys_file=keys,
        metrics_port=0,
        output_key="drop",
    )
    compiled: list[str] = []
    pipeline = build_pipeline(settings, on_compiled=lambda entry: compiled.append(entry.writer.ref))
    worker = Worker(settings, pipeline)
    thread = threading.Thread(target=worker.run, kwargs={"until_idle_s": 8.0})
    thread.start()

    v1 = Framer.from_file(schemas / "feedback.avsc")
    produce(raw, [(None, v1(r)) for r in generate_feedback(50, seed=3)])
    time.sleep(2)
    # the producer team ships v2: the file appears in the mounted directory while the worker runs
    (schemas / "feedback-v2.avsc").write_text(json.dumps(v2_schema))
    v2 = Framer(v2_schema)
    produce(raw, [(None, v2(r)) for r in generate_feedback(50, seed=4, schema_version=2)])
    thread.join(timeout=180)
    assert not thread.is_alive()

    assert read_all(dlq) == []
    sanitized = read_all(out)
    assert len(sanitized) == 100
    assert len(compiled) == 2, "one plan per writer schema, compiled once each"
    added = {f["name"] for f in v2_schema["fields"]} - {
        f["name"] for f in json.loads((schemas / "feedback.avsc").read_text())["fields"]
    }
    versions: dict[str, int] = {}
    with_new_fields = 0
    for r in sanitized:
        framing, ident, start = parse_frame(r.value)
        writer = pipeline.resolver.lookup(framing, ident)  # the derived schema, indexed when compiled
        record = decode_payload(r.value or b"", start, writer.parsed, writer.ref)
        assert fastavro.validation.validate(record, fastavro.parse_schema(strip_logical_types(writer.schema)))
        versions[writer.ref] = versions.get(writer.ref, 0) + 1
        with_new_fields += added <= set(record)
    assert sorted(versions.values()) == [50, 50], "two derived schemas, 50 records each"
    assert with_new_fields == 50, "v2's added field reaches the sanitized records written with v2"
