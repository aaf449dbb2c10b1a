"""End-to-end latency at a fixed offered load: a paced producer and a read_committed consumer.

    python -m bench.latency produce --bootstrap B --topic RAW --data FILE --rate R --seconds S --out F
    python -m bench.latency consume --bootstrap B --topic OUT --expect N --timeout S --out F

The producer sends the benchmark's records at ``R`` per second, each stamped with the wall-clock time of
its ``produce()`` call (also its Kafka timestamp), and writes ``{"p:o": t}`` per acknowledged record. The
consumer, assigned to the sanitized topic from offset 0 with ``isolation.level=read_committed``, writes
the arrival time of each record under its lineage ``p:o``. Latency is the difference, on one clock.
Each side is its own process, so neither competes for the other's interpreter lock.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from bench.data import load_values
from bench.topics import LINEAGE_OFFSET, LINEAGE_PARTITION, lineage


def produce(bootstrap: str, topic: str, data: Path, rate: float, seconds: float, out: Path) -> None:
    count = max(1, int(rate * seconds))
    pairs = load_values(data, count)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 1,
            "enable.idempotence": True,
            "compression.type": "lz4",
        }
    )
    sent: dict[str, float] = {}

    def on_delivery(stamp: float) -> Any:
        def done(err: Any, msg: Any) -> None:
            if err is None:
                sent[f"{msg.partition()}:{msg.offset()}"] = stamp

        return done

    start = time.time() + 0.2
    for i in range(count):
        key, value = pairs[i % len(pairs)]
        due = start + i / rate
        while (ahead := due - time.time()) > 0:
            producer.poll(min(ahead, 0.01))
        stamp = time.time()
        producer.produce(topic, value, key, timestamp=int(stamp * 1000), on_delivery=on_delivery(stamp))
        producer.poll(0)
    producer.flush(60)
    elapsed = time.time() - start
    out.write_text(
        json.dumps({"sent": sent, "count": count, "offered_rate": count / elapsed}), encoding="utf-8"
    )


def consume(
    bootstrap: str, topic: str, expect: int, timeout_s: float, out: Path, idle_s: float = 5.0
) -> None:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-latency-{time.time_ns()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "fetch.wait.max.ms": 10,
            "fetch.min.bytes": 1,
        }
    )
    md = consumer.list_topics(topic, timeout=10)
    consumer.assign([TopicPartition(topic, p, 0) for p in md.topics[topic].partitions])
    consumer.consume(1, 0.5)  # connections and offsets set up before the harness starts the load
    print("ready", flush=True)
    arrived: dict[str, float] = {}
    deadline = time.time() + timeout_s
    last = time.time()
    # done when every record arrived, or (dead letters never arrive) when the topic has gone quiet
    while len(arrived) < expect and time.time() < deadline and not (arrived and time.time() - last > idle_s):
        for msg in consumer.consume(1000, 0.1):
            last = time.time()
            now = time.time()
            if msg.error():
                continue
            headers = lineage(msg.headers())
            arrived[f"{int(headers[LINEAGE_PARTITION])}:{int(headers[LINEAGE_OFFSET])}"] = now
    consumer.close()
    out.write_text(json.dumps({"arrived": arrived}), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=("produce", "consume"))
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--rate", type=float)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--expect", type=int)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    if args.role == "produce":
        produce(args.bootstrap, args.topic, args.data, args.rate, args.seconds, args.out)
    else:
        consume(args.bootstrap, args.topic, args.expect, args.timeout, args.out)
    sys.exit(0)


if __name__ == "__main__":
    main()
