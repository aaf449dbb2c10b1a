"""A worker holding only the ACLs `stream-anon acls` prints sanitizes exactly once; without any one of them
it stops at once naming the missing right; other principals are refused what they do not need; the
dead-letter replay works with only the ACLs printed for it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from clusterkit import (
    CLIENTS,
    Scenario,
    audit,
    client,
    grant,
    grant_simple,
    read_committed,
    revoke,
    revoke_all,
    run_worker,
    start_worker,
    wait_until,
    worker_acls,
    worker_env,
)
from confluent_kafka import KafkaError, KafkaException, Producer
from tickets import PacedProducer


@pytest.fixture(autouse=True)
def clean_acls() -> None:
    for principal in ("User:worker", "User:analytics", "User:producer", "User:replay"):
        revoke_all(principal)


def fill(s: Scenario, count: int, first: int = 0) -> None:
    grant_simple("User:producer", "TOPIC", s.raw, "WRITE")
    producer = PacedProducer(client("producer"), s.raw, count, rate=1e9, first=first)
    producer.run()
    assert not producer.failed, producer.failed


def test_worker_with_only_its_acls_sanitizes_exactly_once(tmp_path: Path) -> None:
    s = Scenario.create(tmp_path)
    fill(s, 3000)
    entries = worker_acls(s.config)
    assert {(e["principal"], e["operation"]) for e in entries} == {
        ("User:worker", "READ"),
        ("User:worker", "WRITE"),
        ("User:analytics", "READ"),
    }
    grant(*entries)
    done = run_worker(s.config, 300, "--until-idle", "5")
    assert done.returncode == 0, done.stdout + done.stderr
    result = audit(s, 3000)
    result.assert_exactly_once()
    assert (result.sanitized, result.dead_lettered) == (3000, 0)
    # the analytics reader's share of the same output: it reads every sanitized record
    assert len(read_committed(s.out, principal="analytics")) == 3000


WORKER_RIGHTS = ["raw-read", "group-read", "out-write", "dlq-write", "txn-write"]


@pytest.mark.parametrize("missing", range(5), ids=WORKER_RIGHTS)
def test_without_any_one_acl_the_worker_stops_naming_the_right(tmp_path: Path, missing: int) -> None:
    s = Scenario.create(tmp_path)
    fill(s, 50)
    entries = [e for e in worker_acls(s.config) if e["principal"] == "User:worker"]
    assert len(entries) == 5
    withheld = entries.pop(missing)
    grant(*entries)
    done = run_worker(s.config, 120, "--until-idle", "10")
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    right = f"{withheld['operation']} on {withheld['resource_type']} '{withheld['resource_name']}'"
    error_lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert error_lines and right in error_lines[-1], output
    # nothing was published: no sanitized record, and no record dead-lettered for want of a right
    assert read_committed(s.out, idle_s=1) == []
    assert read_committed(s.dlq, idle_s=1) == []


def test_a_right_revoked_while_running_stops_the_worker_and_a_fixed_restart_finishes_exactly_once(
    tmp_path: Path,
) -> None:
    s = Scenario.create(tmp_path)
    fill(s, 1000)
    entries = worker_acls(s.config)
    grant(*entries)
    log = tmp_path / "worker.log"
    worker = start_worker(s.config, log)
    try:
        wait_until(lambda: len(read_committed(s.out, idle_s=1)) > 0, 120, "the first sanitized records")
        write_out = next(e for e in entries if e["resource_name"] == s.out)
        revoke(write_out)
        fill(s, 1000, first=1000)
        worker.wait(120)
    finally:
        if worker.poll() is None:
            worker.kill()
    output = log.read_text()
    assert worker.returncode == 2, output[-3000:]
    assert f"error: not authorized: the worker needs WRITE on TOPIC '{s.out}'" in output
    assert read_committed(s.dlq, idle_s=1) == [], "a refused write became a dead letter"
    # the operator restores the right: the restarted worker finishes, every record exactly once
    grant(write_out)
    done = run_worker(s.config, 300, "--until-idle", "5")
    assert done.returncode == 0, done.stdout + done.stderr
    result = audit(s, 2000)
    result.assert_exactly_once()
    assert (result.sanitized, result.dead_lettered) == (2000, 0)


def refused_read(principal: str, topic: str) -> KafkaError:
    with pytest.raises(KafkaException) as caught:
        read_committed(topic, principal=principal, idle_s=1, timeout_s=20)
    err: KafkaError = caught.value.args[0]
    return err


def test_principals_are_refused_what_they_do_not_need(tmp_path: Path) -> None:
    s = Scenario.create(tmp_path)
    fill(s, 20)
    grant(*worker_acls(s.config))
    assert run_worker(s.config, 120, "--until-idle", "5").returncode == 0

    # analytics: the sanitized topic, never the raw records nor the dead letters (which carry raw bytes)
    assert len(read_committed(s.out, principal="analytics")) == 20
    assert refused_read("analytics", s.raw).code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert refused_read("analytics", s.dlq).code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # the producer of raw records cannot read what the worker published
    assert refused_read("producer", s.out).code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    # the worker cannot write where it only reads
    delivered: list[KafkaError | None] = []
    p = Producer(client("worker", **{"message.timeout.ms": 15000}))
    p.produce(s.raw, b"x", on_delivery=lambda err, _m: delivered.append(err))
    p.flush(20)
    assert delivered and delivered[0] is not None
    assert delivered[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_the_dead_letter_replay_with_only_its_printed_acls_puts_the_dead_letters_back(
    tmp_path: Path,
) -> None:
    s = Scenario.create(tmp_path)
    fill(s, 20)
    bad = [f"not a framed record {i}".encode() for i in range(5)]
    p = Producer(client("producer"))
    for i, value in enumerate(bad):
        p.produce(s.raw, value, f"bad{i}".encode())
    assert p.flush(30) == 0
    grant(*worker_acls(s.config))
    assert run_worker(s.config, 120, "--until-idle", "5").returncode == 0
    assert len(read_committed(s.dlq)) == 5

    # the replay's own principal, with exactly what `stream-anon acls --replay-principal` prints for it
    printed = worker_acls(s.config, "User:worker", "--replay-principal", "User:replay")
    replay_rights = [e for e in printed if e["principal"] == "User:replay"]
    assert {(e["resource_type"], e["operation"]) for e in replay_rights} == {
        ("TOPIC", "READ"),
        ("GROUP", "READ"),
        ("TOPIC", "WRITE"),
        ("TRANSACTIONAL_ID", "WRITE"),
    }
    grant(*replay_rights)
    config = tmp_path / "replay.yaml"
    settings = yaml.safe_load(s.config.read_text())
    config.write_text(
        yaml.safe_dump({**settings, "kafka_secrets_file": str(CLIENTS / "replay.librdkafka.yaml")})
    )
    done = replay(config)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "replayed 5 of 5 record(s) read" in done.stdout

    raw = read_committed(s.raw)
    replayed = [m for m in raw if dict(m.headers() or []).get("stream-anon.replay.count") == b"1"]
    assert sorted(m.value() for m in replayed) == sorted(bad)
    assert len(raw) == 20 + 5 + 5
    # its position is committed with the writes: run again, nothing is replayed twice
    again = replay(config)
    assert again.returncode == 0 and "replayed 0 of 0 record(s) read" in again.stdout, again.stdout
    # and it holds nothing beyond the replay: not the sanitized records
    assert refused_read("replay", s.out).code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def replay(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream_anon", "dlq", "replay", "--config", str(config)],
        env=worker_env(),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
