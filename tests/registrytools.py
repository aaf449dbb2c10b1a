"""Helpers for tests that use the real Schema Registry (Apicurio, started by scripts/registry.sh).

Producers write the way feedback producers do, with confluent-kafka's ``AvroSerializer``; readers of the
sanitized topic use ``AvroDeserializer`` with ``read_committed``, as analytics consumers do.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from kafkatools import BOOTSTRAP, REPO, unique

REGISTRY_URL = os.environ.get("STREAM_ANON_TEST_REGISTRY_URL", "http://127.0.0.1:8081/apis/ccompat/v7")


def client(url: str = REGISTRY_URL) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": url})


def register(subject: str, schema_text: str) -> int:
    return int(client().register_schema(subject, Schema(schema_text, "AVRO")))


def produce_avro(
    topic: str, schema_text: str, records: Iterable[dict[str, Any]], key: str | None = None
) -> int:
    """Produce records with ``AvroSerializer`` (registering the schema under ``<topic>-value``)."""
    serializer = AvroSerializer(client(), schema_text, conf={"auto.register.schemas": True})
    context = SerializationContext(topic, MessageField.VALUE)
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 5, "enable.idempotence": True})
    n = 0
    for record in records:
        value = serializer(record, context)
        record_key = str(record[key]).encode() if key else None
        while True:
            try:
                producer.produce(topic, value, record_key)
                break
            except BufferError:
                producer.poll(0.1)
        n += 1
    assert producer.flush(60) == 0
    return n


def read_avro(topic: str, expected: int, timeout_s: float = 60.0) -> list[dict[str, Any]]:
    """Read the sanitized topic as an analytics consumer does: ``AvroDeserializer``, read_committed."""
    deserializer = AvroDeserializer(client())
    consumer = Consumer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "group.id": unique("avro-reader"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([topic])
    records: list[dict[str, Any]] = []
    try:
        import time

        deadline = time.monotonic() + timeout_s
        while len(records) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            records.append(deserializer(msg.value(), SerializationContext(topic, MessageField.VALUE)))
    finally:
        consumer.close()
    return records


def java_console_consume(topic: str, timeout_ms: int = 5000) -> tuple[int, str]:
    """Kafka's own Java console consumer, read_committed: (records it reports processed, its stderr)."""
    subprocess.run([str(REPO / "scripts" / "kafka.sh"), "fetch"], check=True, capture_output=True)
    libs = os.environ.get("KAFKA_CACHE", str(REPO / ".cache" / "kafka")) + "/libs/*"
    done = subprocess.run(
        [
            "java",
            "-Xmx256m",
            "-XX:TieredStopAtLevel=1",
            "-cp",
            libs,
            "org.apache.kafka.tools.consumer.ConsoleConsumer",
            "--bootstrap-server",
            BOOTSTRAP,
            "--topic",
            topic,
            "--from-beginning",
            "--isolation-level",
            "read_committed",
            "--timeout-ms",
            str(timeout_ms),
            "--property",
            "print.value=false",
            "--property",
            "print.offset=true",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("Offset:")]
    return len(lines), done.stderr
