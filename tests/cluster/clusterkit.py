"""The three-node TLS/SCRAM/ACL cluster of scripts/kafka-cluster.sh as the cluster tests use it: clients
per principal, topics with three replicas, ACLs, node crashes and restarts, the exactly-once audit by id."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)
from tickets import SCHEMAS

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "kafka-cluster.sh"
RUN = Path(os.environ.get("KAFKA_CLUSTER_RUN", REPO / ".cache" / "kafka" / "cluster"))
CLIENTS = RUN / "clients"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def client(principal: str, **extra: Any) -> dict[str, Any]:
    """librdkafka settings of a principal (admin, worker, analytics, producer, replay), as the script
    wrote them."""
    conf: dict[str, Any] = yaml.safe_load((CLIENTS / f"{principal}.librdkafka.yaml").read_text())
    return {**conf, "log_level": 0, **extra}


def script(*args: str, timeout_s: float = 300) -> str:
    done = subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout_s, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"kafka-cluster.sh {' '.join(args)} failed: {done.stderr or done.stdout}")
    return done.stdout


def admin() -> AdminClient:
    return AdminClient(client("admin"))


def create_topics(*names: str, partitions: int = 3) -> None:
    a = admin()
    for f in a.create_topics([NewTopic(n, partitions, 3) for n in names]).values():
        f.result(30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        md = a.list_topics(timeout=10)
        if all(n in md.topics and len(md.topics[n].partitions) == partitions for n in names):
            return
        time.sleep(0.2)
    raise TimeoutError(f"topics not visible: {names}")


_RESOURCES = {
    "TOPIC": ResourceType.TOPIC,
    "GROUP": ResourceType.GROUP,
    "TRANSACTIONAL_ID": ResourceType.TRANSACTIONAL_ID,
}


def binding(entry: dict[str, Any]) -> AclBinding:
    """An ACL as `stream-anon acls --format json` prints it, for the admin client."""
    return AclBinding(
        _RESOURCES[entry["resource_type"]],
        entry["resource_name"],
        ResourcePatternType[entry["pattern"]],
        entry["principal"],
        entry["host"],
        AclOperation[entry["operation"]],
        AclPermissionType[entry["permission"]],
    )


def grant(*entries: dict[str, Any]) -> None:
    a = admin()  # the futures need their client alive
    for f in a.create_acls([binding(e) for e in entries]).values():
        f.result(30)
    wait_acls_applied()


def grant_simple(principal: str, resource: str, name: str, operation: str) -> None:
    grant(
        {
            "principal": principal,
            "resource_type": resource,
            "resource_name": name,
            "pattern": "LITERAL",
            "operation": operation,
            "host": "*",
            "permission": "ALLOW",
        }
    )


def revoke(entry: dict[str, Any]) -> None:
    """Delete one ACL, as `stream-anon acls --format json` printed it."""
    b = binding(entry)
    exact = AclBindingFilter(
        b.restype, b.name, b.resource_pattern_type, b.principal, b.host, b.operation, b.permission_type
    )
    a = admin()
    for fut in a.delete_acls([exact]).values():
        assert fut.result(30), f"no such ACL: {entry}"
    wait_acls_applied()


def revoke_all(principal: str) -> None:
    f = AclBindingFilter(
        ResourceType.ANY,
        None,
        ResourcePatternType.ANY,
        principal,
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    a = admin()
    for fut in a.delete_acls([f]).values():
        fut.result(30)
    wait_acls_applied()


def wait_acls_applied() -> None:
    # ACLs are metadata records: every broker applies them when it replays the log, within moments
    time.sleep(1.5)


def worker_acls(config: Path, principal: str = "User:worker", *options: str) -> list[dict[str, Any]]:
    """The ACLs `stream-anon acls` prints for this configuration (the command under test), with the
    reader User:analytics and ``options`` (e.g. --replay-principal)."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "stream_anon",
            "acls",
            "--config",
            str(config),
            "--principal",
            principal,
            "--reader-principal",
            "User:analytics",
            "--format",
            "json",
            *options,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    entries: list[dict[str, Any]] = json.loads(done.stdout)
    return entries


@dataclass
class Scenario:
    """One worker's topics and configuration on the cluster."""

    raw: str
    out: str
    dlq: str
    group: str
    config: Path

    @classmethod
    def create(cls, tmp_path: Path, **settings: Any) -> Scenario:
        raw, out, dlq = unique("c.raw"), unique("c.san"), unique("c.dlq")
        create_topics(raw, out, dlq)
        group = unique("cg")
        config = tmp_path / "worker.yaml"
        conf: dict[str, Any] = {
            "bootstrap_servers": client("worker")["bootstrap.servers"],
            "input_topics": [raw],
            "output_topic": out,
            "dlq_topic": dlq,
            "group_id": group,
            "schemas_dir": str(SCHEMAS),
            "output_key": "keep",
            "metrics_port": 0,
            "batch_size": 200,
            "log_format": "json",
            "connect_timeout_s": 20,
            "kafka_secrets_file": str(CLIENTS / "worker.librdkafka.yaml"),
            # a killed member holds its partitions until its session times out: keep scenarios short
            "kafka": {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000},
            **settings,
        }
        config.write_text(yaml.safe_dump(conf))
        return cls(raw, out, dlq, group, config)


def worker_env() -> dict[str, str]:
    """The environment without STREAM_ANON_* overrides: the configuration file alone decides."""
    return {k: v for k, v in os.environ.items() if not k.startswith("STREAM_ANON_")}


def start_worker(config: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "stream_anon", "run", "--config", str(config), *args],
        env=worker_env(),
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,
    )


def run_worker(config: Path, timeout_s: float, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream_anon", "run", "--config", str(config), *args],
        env=worker_env(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def read_committed(
    topic: str, principal: str = "admin", idle_s: float = 3.0, timeout_s: float = 120
) -> list[Any]:
    """Every record of a topic up to its end, read_committed, as ``principal``."""
    consumer = Consumer(
        client(
            principal,
            **{
                "group.id": unique("analytics-audit" if principal == "analytics" else "audit"),
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            },
        )
    )
    try:
        md = consumer.list_topics(topic, timeout=10)
        meta = md.topics[topic]
        if meta.error is not None:
            raise KafkaException(meta.error)
        parts = list(meta.partitions)
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        records: list[Any] = []
        done = {p for p, end in ends.items() if end == 0}
        last = time.monotonic()
        deadline = time.monotonic() + timeout_s
        while len(done) < len(parts) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                if time.monotonic() - last > idle_s:
                    break  # read_committed stops before aborted tails and markers: idle means at the end
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(msg.error())
            last = time.monotonic()
            records.append(msg)
            if msg.offset() + 1 >= ends[msg.partition()]:
                done.add(msg.partition())
        return records
    finally:
        consumer.close()


@dataclass
class IdAudit:
    """Each input id's fate, read with read_committed: sanitized or dead-lettered, exactly once."""

    inputs: int
    sanitized: int
    dead_lettered: int
    lost: list[str]
    duplicated: list[str]

    def assert_exactly_once(self) -> None:
        assert not self.lost, f"{len(self.lost)} of {self.inputs} input ids lost, e.g. {self.lost[:5]}"
        dup = self.duplicated
        assert not dup, f"{len(dup)} input ids published more than once, e.g. {dup[:5]}"


def audit(s: Scenario, expected: int) -> IdAudit:
    """By input id (the raw record's key, k<i>, written once by the idempotent producer): the raw
    topic's ids against the sanitized records' lineage headers and the dead letters' source headers."""
    raw = read_committed(s.raw)
    ids_by_source = {(m.partition(), m.offset()): m.key().decode() for m in raw}
    distinct = len(set(ids_by_source.values()))
    assert distinct == expected == len(raw), f"raw topic: {len(raw)} records, {distinct} ids, {expected} sent"
    outputs = [*read_committed(s.out), *read_committed(s.dlq)]
    seen: Counter[str] = Counter()
    for m in outputs:
        headers = {k: v.decode() for k, v in m.headers() or []}
        source = (int(headers["stream-anon.source.partition"]), int(headers["stream-anon.source.offset"]))
        seen[ids_by_source.get(source, f"unknown{source}")] += 1
    all_ids = set(ids_by_source.values())
    return IdAudit(
        inputs=len(all_ids),
        sanitized=len(outputs) - sum(1 for m in outputs if m.topic() == s.dlq),
        dead_lettered=sum(1 for m in outputs if m.topic() == s.dlq),
        lost=sorted(all_ids - set(seen)),
        duplicated=sorted(i for i, n in seen.items() if n > 1 or i not in all_ids),
    )


def leader_of(topic: str, partition: int = 0) -> int:
    md = admin().list_topics(topic, timeout=10)
    return int(md.topics[topic].partitions[partition].leader)


def active_controller() -> int:
    return int(script("controller").strip())


def wait_until(predicate: Any, timeout_s: float, what: str, every_s: float = 1.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every_s)
    raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")
