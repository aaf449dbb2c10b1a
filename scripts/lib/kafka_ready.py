"""Is this Kafka ready? One real client round trip, for scripts/kafka.sh and scripts/kafka-cluster.sh.

Metadata with at least --brokers brokers; the check topic (created with the brokers' default replication)
with that many in-sync replicas; an acks=all write consumed back and its offset committed by a group (so
__consumer_offsets exists); a transactional write committed (so __transaction_state exists and the
transaction coordinator answers). Exits non-zero with the reason on the first step that fails.

    kafka_ready.py (--bootstrap HOST:PORT | --client-settings FILE.yaml) --topic NAME [--brokers N]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def settings(args: argparse.Namespace) -> dict[str, Any]:
    if args.client_settings:
        import yaml

        with open(args.client_settings, encoding="utf-8") as file:
            loaded: dict[str, Any] = yaml.safe_load(file)
        return {**loaded, "log_level": 0}
    return {"bootstrap.servers": args.bootstrap, "log_level": 0}


def round_trip(conf: dict[str, Any], topic: str, brokers: int) -> None:
    admin = AdminClient(conf)
    metadata = admin.list_topics(timeout=10)
    if len(metadata.brokers) < brokers:
        sys.exit(f"{len(metadata.brokers)} of {brokers} brokers in the metadata")
    if topic not in metadata.topics:
        try:
            admin.create_topics([NewTopic(topic, 1, -1)])[topic].result(15)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
        metadata = admin.list_topics(topic, timeout=10)
    in_sync = metadata.topics[topic].partitions[0].isrs
    if len(in_sync) < brokers:
        sys.exit(f"check topic has {len(in_sync)} in-sync replicas, want {brokers}")
    delivered: list[Any] = []
    producer = Producer({**conf, "acks": "all"})
    producer.produce(topic, b"ping", on_delivery=lambda err, msg: delivered.append((err, msg)))
    if producer.flush(15) or not delivered or delivered[0][0] is not None:
        sys.exit(f"produce failed: {delivered[0][0] if delivered else 'no delivery report'}")
    consumer = Consumer({**conf, "group.id": topic, "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, delivered[0][1].offset())])
    message, deadline = None, time.monotonic() + 15
    while time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and not message.error():
            break
    if message is None or message.error() or message.value() != b"ping":
        sys.exit("consume failed: the produced record did not come back")
    consumer.commit(message=message, asynchronous=False)
    consumer.close()
    # a transactional id of its own: concurrent checks must not fence each other
    transactional = Producer({**conf, "transactional.id": f"{topic}-{uuid.uuid4().hex[:12]}"})
    transactional.init_transactions(30)
    transactional.begin_transaction()
    transactional.produce(topic, b"txn")
    transactional.commit_transaction(30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--bootstrap")
    where.add_argument("--client-settings", help="librdkafka settings (YAML), e.g. with SASL_SSL")
    parser.add_argument("--topic", required=True, help="the check topic; also its group and transactional id")
    parser.add_argument("--brokers", type=int, default=1)
    args = parser.parse_args()
    round_trip(settings(args), args.topic, args.brokers)


if __name__ == "__main__":
    main()
