"""The consumer-lag metric agrees with what Kafka reports for the group, under exactly-once.

Under exactly-once the offsets are committed by the producer inside each transaction, so librdkafka's own
``consumer_lag`` keeps the offset the partition was assigned with: a second run of a group showed the
records it had processed as lag (74/62/64) while Kafka's consumer group command showed 0.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from kafkatools import BOOTSTRAP, REPO, Framer, create_topics, produce, unique

from stream_anon.app import build_pipeline
from stream_anon.config import Settings
from stream_anon.datagen import generate_feedback
from stream_anon.health import Health
from stream_anon.keys import Keys
from stream_anon.metrics import Metrics
from stream_anon.service import WorkerObserver
from stream_anon.worker import Worker

pytestmark = pytest.mark.broker


def kafka_lag(group: str, topic: str, partitions: int) -> dict[str, int]:
    """What ``kafka-consumer-groups --describe`` shows: high watermark minus the group's committed offset."""
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group, "enable.auto.commit": False})
    try:
        committed = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        lags = {}
        for tp in committed:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
            lags[str(tp.partition)] = high - tp.offset
        return lags
    finally:
        consumer.close()


def run_once(settings: Settings, metrics: Metrics, idle_s: float) -> None:
    worker = Worker(settings, build_pipeline(settings), WorkerObserver(metrics, Health()))
    thread = threading.Thread(target=worker.run, kwargs={"until_idle_s": idle_s})
    thread.start()
    thread.join(timeout=180)
    assert not thread.is_alive()


def test_lag_matches_the_groups_committed_offsets_under_exactly_once(tmp_path: Path, broker: str) -> None:
    raw, out, dlq = unique("raw"), unique("out"), unique("dlq")
    create_topics([raw, out, dlq], partitions=3)
    keys = tmp_path / "keys.json"
    Keys.generate().save(keys)
    settings = Settings(
        input_topics=[raw], output_topic=out, dlq_topic=dlq, group_id=unique("g"),
        schemas_dir=REPO / "schemas", keys_file=keys, metrics_port=0, output_key="drop",
        delivery="exactly_once",
    )  # fmt: skip
    framer = Framer(json.loads((REPO / "schemas" / "feedback.avsc").read_text()))
    produce(raw, [(str(i).encode(), framer(r)) for i, r in enumerate(generate_feedback(60, seed=1))])
    run_once(settings, Metrics(), idle_s=2.0)  # the group now has committed offsets

    produce(raw, [(str(i).encode(), framer(r)) for i, r in enumerate(generate_feedback(200, seed=2))])
    metrics = Metrics()
    started = time.monotonic()
    # idle long enough for a statistics report (every 5 s) after the last commit
    run_once(settings, metrics, idle_s=7.0)
    assert time.monotonic() - started < 120

    expected = kafka_lag(settings.group_id, raw, 3)
    assert expected == {"0": 0, "1": 0, "2": 0}
    shown = {
        p: metrics.registry.get_sample_value(
            "stream_anon_consumer_lag_records", {"topic": raw, "partition": p}
        )
        for p in expected
    }
    assert shown == {p: float(lag) for p, lag in expected.items()}
