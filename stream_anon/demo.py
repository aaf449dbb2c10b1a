"""The demo: realistic feedback through the real broker, raw next to sanitized, with the counts.

``stream-anon demo`` creates fresh demo topics, produces generated feedback (PII in structured fields and
in free text, plus a few malformed records), runs the worker until the topic is drained, then reads the
sanitized and dead-letter topics back and shows what happened.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from stream_anon.config import Settings
from stream_anon.datagen import generate_feedback
from stream_anon.kafka.protocols import NullObserver
from stream_anon.kafka.reader import TopicReadError, read_to_end
from stream_anon.records import HEADER_PREFIX, Outcome, Sanitized
from stream_anon.schemas import fingerprint, parse_writer_schema
from stream_anon.wire import SINGLE_OBJECT_MAGIC, Framing, decode_payload, encode, frame_header, parse_frame
from stream_anon.worker import Worker

SHOWN_FIELDS = (
    "user.name",
    "user.email",
    "user.phone",
    "ip_address",
    "device_id",
    "country",
    "postal_code",
    "age",
    "rating",
)


@dataclass(frozen=True, slots=True)
class DemoTopics:
    raw: str
    sanitized: str
    dlq: str


def recreate_topics(bootstrap: str, topics: DemoTopics, partitions: int) -> None:
    """Fresh topics every run, so the counts shown are this run's."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [topics.raw, topics.sanitized, topics.dlq]
    existing = admin.list_topics(timeout=15).topics
    doomed = [n for n in names if n in existing]
    if doomed:
        for future in admin.delete_topics(doomed).values():
            future.result(30)
        _wait(lambda: not any(n in admin.list_topics(timeout=10).topics for n in doomed), "topic deletion")
    new = [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names]
    for future in admin.create_topics(new).values():
        future.result(30)
    _wait(lambda: all(n in admin.list_topics(timeout=10).topics for n in names), "topic creation")


def forget_group(bootstrap: str, group: str) -> None:
    """Delete the demo's consumer group: its offsets outlive the recreated topics, and offsets within the
    new topics' range would make the next run skip records that it just produced."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        admin.delete_consumer_groups([group], request_timeout=15)[group].result(30)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.GROUP_ID_NOT_FOUND:
            raise click.ClickException(f"cannot reset the demo's consumer group {group}: {exc}") from None


def _wait(ready: Any, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.3)
    raise click.ClickException(f"timed out waiting for {what}")


def malformed_records() -> list[tuple[str, bytes]]:
    """A few records the worker must dead-letter, each for a different reason."""
    return [
        ("not Avro at all", b'{"email": "someone@example.org"}'),
        ("unknown schema fingerprint", SINGLE_OBJECT_MAGIC + b"\x01" * 8 + b"\x02abc"),
        ("empty value", b""),
    ]


def produce_feedback(
    bootstrap: str, topic: str, schema_path: Path, count: int, seed: int, header: bytes | None = None
) -> tuple[dict[int, dict[str, Any]], int]:
    """Produce ``count`` generated records (+ malformed ones); returns the raw records by feedback order."""
    writer = parse_writer_schema(schema_path.read_text(encoding="utf-8"), ref=schema_path.name)
    header = header or frame_header(Framing.SINGLE_OBJECT, fingerprint(writer.schema))
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
    records = generate_feedback(count, seed=seed)
    for record in records:
        key = str(record["user"]["user_id"]).encode()
        producer.produce(topic, encode(header, writer.parsed, record), key)
        producer.poll(0)
    bad = malformed_records()
    for _, value in bad:
        producer.produce(topic, value, b"malformed")
    if producer.flush(60) != 0:
        raise click.ClickException("could not deliver the demo records to the broker")
    return {i: r for i, r in enumerate(records)}, count + len(bad)


class CountingObserver(NullObserver):
    def __init__(self) -> None:
        self.sanitized = 0
        self.dead_lettered = 0

    def delivered(self, outcomes: list[Outcome], output_topic: str, dlq_topic: str) -> None:
        for o in outcomes:
            if isinstance(o, Sanitized):
                self.sanitized += 1
            else:
                self.dead_lettered += 1


def run_until_drained(
    worker: Worker, observer: CountingObserver, expected: int, timeout_s: float = 300.0
) -> None:
    from tqdm import tqdm

    thread = threading.Thread(target=worker.run, kwargs={"until_idle_s": 30.0}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    with tqdm(total=expected, unit="rec", desc="sanitizing", leave=True) as bar:
        done = 0
        while thread.is_alive() and time.monotonic() < deadline:
            now = observer.sanitized + observer.dead_lettered
            bar.update(now - done)
            done = now
            if done >= expected:
                break
            time.sleep(0.2)
    worker.stop()
    thread.join(timeout=60)
    if observer.sanitized + observer.dead_lettered < expected:
        raise click.ClickException(
            f"worker processed {observer.sanitized + observer.dead_lettered} of {expected} records in time"
        )


def read_topic(bootstrap: str, topic: str) -> Iterator[Any]:
    try:
        yield from read_to_end(
            {"bootstrap.servers": bootstrap}, topic, purpose="demo-reader", idle_timeout_s=5.0
        )
    except TopicReadError as exc:
        raise click.ClickException(f"cannot read {topic}: {exc}") from None


def flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in record.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and key != "attributes":
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def show(text: Any, width: int) -> str:
    rendered = "null" if text is None else text if isinstance(text, str) else json.dumps(text)
    return rendered if len(rendered) <= width else rendered[: width - 1] + "…"


def side_by_side(raw: dict[str, Any], sanitized: dict[str, Any], width: int = 44) -> str:
    flat_raw, flat_out = flatten(raw), flatten(sanitized)
    lines = [f"  {'field':<13} {'raw':<{width}} sanitized", f"  {'-' * 13} {'-' * width} {'-' * width}"]
    for path in SHOWN_FIELDS:
        if path not in flat_raw:
            continue
        after = show(flat_out[path], width) if path in flat_out else "(dropped)"
        lines.append(f"  {path:<13} {show(flat_raw[path], width):<{width}} {after}")
    return "\n".join(lines)


def report(
    settings: Settings, resolver: Any, raw_by_offset: dict[tuple[int, int], dict[str, Any]], shown: int
) -> tuple[int, Counter[str]]:
    sanitized: list[tuple[tuple[int, int], dict[str, Any]]] = []
    for msg in read_topic(settings.bootstrap_servers, settings.output_topic):
        headers = dict(msg.headers() or [])
        source = (
            int(headers[HEADER_PREFIX + "source.partition"]),
            int(headers[HEADER_PREFIX + "source.offset"]),
        )
        framing, ident, start = parse_frame(msg.value())
        writer = resolver.lookup(framing, ident)
        sanitized.append((source, decode_payload(msg.value(), start, writer.parsed, writer.ref)))
    reasons: Counter[str] = Counter()
    for msg in read_topic(settings.bootstrap_servers, settings.dlq_topic):
        headers = dict(msg.headers() or [])
        reasons[headers.get(HEADER_PREFIX + "reason", b"?").decode()] += 1

    # show the records whose free text held PII first: that is where the scan earns its keep
    def interesting(item: tuple[tuple[int, int], dict[str, Any]]) -> tuple[bool, tuple[int, int]]:
        source, record = item
        raw = raw_by_offset.get(source, {})
        return (raw.get("comment") == record.get("comment"), source)

    for source, record in sorted(sanitized, key=interesting)[:shown]:
        raw = raw_by_offset.get(source)
        if raw is not None:
            click.echo(f"\nrecord from partition {source[0]} offset {source[1]}:")
            click.echo(side_by_side(raw, record))
            click.echo(f"  comment, raw:       {raw.get('comment')}")
            click.echo(f"  comment, sanitized: {record.get('comment')}")
    return len(sanitized), reasons


def source_offsets(
    bootstrap: str, topic: str, schema_path: Path, header: bytes | None = None
) -> dict[tuple[int, int], dict[str, Any]]:
    """The raw records as the broker stored them, by (partition, offset), for the side-by-side view:
    those framed with ``header`` (by default the schema's single-object header)."""
    writer = parse_writer_schema(schema_path.read_text(encoding="utf-8"), ref=schema_path.name)
    header = header or SINGLE_OBJECT_MAGIC + fingerprint(writer.schema)
    raw: dict[tuple[int, int], dict[str, Any]] = {}
    for msg in read_topic(bootstrap, topic):
        value = msg.value()
        if value and value.startswith(header):
            raw[(msg.partition(), msg.offset())] = decode_payload(
                value, len(header), writer.parsed, writer.ref
            )
    return raw


def register_raw_schema(registry_url: str, topic: str, schema_path: Path) -> bytes:
    """Register the annotated schema as a producer's serializer does (``<topic>-value``); its frame header."""
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

    client = SchemaRegistryClient({"url": registry_url})
    schema_id = client.register_schema(
        f"{topic}-value", Schema(schema_path.read_text(encoding="utf-8"), "AVRO")
    )
    return frame_header(Framing.CONFLUENT, int(schema_id).to_bytes(4, "big"))


def registered_subjects(registry_url: str, topics: DemoTopics) -> list[str]:
    """The demo's subjects in the registry, each with its latest version and id."""
    from confluent_kafka.schema_registry import SchemaRegistryClient

    client = SchemaRegistryClient({"url": registry_url})
    shown = []
    for subject in sorted(client.get_subjects()):
        if subject.startswith((topics.raw, topics.sanitized)):
            latest = client.get_latest_version(subject)
            shown.append(f"{subject} (version {latest.version}, id {latest.schema_id})")
    return shown
