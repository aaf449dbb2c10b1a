"""Exactly-once on the real broker: every input offset lands once in the sanitized or dead-letter topic.

The worker runs as a real process (``python -m stream_anon run``) so it can be stopped with SIGTERM or
killed with SIGKILL mid-stream, then restarted with the same transactional id.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from kafkatools import (
    REPO,
    Framer,
    create_topics,
    produce,
    read_all,
    start_worker,
    unique,
    wait_for_offsets,
    worker_env,
)

from stream_anon.datagen import generate_feedback

pytestmark = pytest.mark.broker

SCHEMA = REPO / "schemas" / "feedback.avsc"


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "keys.json"
    subprocess.run(
        [sys.executable, "-m", "stream_anon", "keys", "generate", "--output", str(path)], check=True
    )
    return path


def seed_topic(topic: str, count: int) -> list[tuple[bytes, bytes]]:
    framer = Framer.from_file(SCHEMA)
    values = [(f"in-{i}".encode(), framer(r)) for i, r in enumerate(generate_feedback(count, seed=11))]
    values.append((b"bad", b"\x01garbage"))  # one dead letter in the mix
    produce(topic, values)
    return values


def landed(out: str, dlq: str) -> Counter[tuple[int, int]]:
    """(partition, offset) of every input record found downstream, read_committed, counted."""
    seen: Counter[tuple[int, int]] = Counter()
    for r in [*read_all(out), *read_all(dlq)]:
        seen[
            (int(r.headers["stream-anon.source.partition"]), int(r.headers["stream-anon.source.offset"]))
        ] += 1
    return seen


def input_offsets(topic: str) -> set[tuple[int, int]]:
    return {(r.partition, r.offset) for r in read_all(topic)}


def setup(tmp_path: Path, keys_file: Path, count: int) -> tuple[dict[str, str], str, str, str]:
    raw, out, dlq = unique("raw"), unique("out"), unique("dlq")
    create_topics([raw, out, dlq], partitions=3)
    seed_topic(raw, count)
    env = worker_env(
        input_topics=[raw],
        output_topic=out,
        dlq_topic=dlq,
        group_id=unique("g"),
        schemas_dir=REPO / "schemas",
        keys_file=keys_file,
        metrics_port=0,
        transactional_id=unique("tx"),
        batch_size=200,
        log_format="json",
        # a killed member holds its partitions until its session times out: keep the test short
        kafka=json.dumps({"session.timeout.ms": 8000, "heartbeat.interval.ms": 1000}),
    )
    return env, raw, out, dlq


def assert_exactly_once(raw: str, out: str, dlq: str) -> None:
    expected = input_offsets(raw)
    seen = landed(out, dlq)
    missing = expected - set(seen)
    duplicated = {k: n for k, n in seen.items() if n > 1}
    assert not missing, f"{len(missing)} input records lost"
    assert not duplicated, f"{len(duplicated)} input records published twice"
    assert set(seen) == expected


def test_round_trip_of_a_few_thousand_records(tmp_path: Path, keys_file: Path) -> None:
    env, raw, out, dlq = setup(tmp_path, keys_file, 3000)
    proc = start_worker(env, "--until-idle", "5", log_path=tmp_path / "worker.log")
    assert proc.wait(timeout=300) == 0, (tmp_path / "worker.log").read_text()[-3000:]
    assert_exactly_once(raw, out, dlq)
    sanitized = read_all(out)
    assert len(sanitized) == 3000
    # the raw key is replaced by a keyed pseudonym
    assert all(r.key is not None and not r.key.startswith(b"in-") for r in sanitized)
    raw_text = json.dumps([r for r in generate_feedback(3000, seed=11)][:50])
    emails = [e for e in json.loads(raw_text) for e in [e["user"]["email"]] if e]
    blob = b"".join(r.value or b"" for r in sanitized)
    assert not any(e.encode() in blob for e in emails), "a raw email reached the sanitized topic"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_stopped_mid_stream_then_restarted_loses_and_duplicates_nothing(
    tmp_path: Path, keys_file: Path, sig: signal.Signals
) -> None:
    # enough input that the signal lands mid-stream even when the machine is idle and the worker fast
    env, raw, out, dlq = setup(tmp_path, keys_file, 30000)
    log = tmp_path / "worker.log"
    proc = start_worker(env, log_path=log)
    wait_for_offsets(out, 200)
    proc.send_signal(sig)
    code = proc.wait(timeout=60)
    if sig == signal.SIGTERM:
        assert code == 0, "a clean shutdown exits 0"
    else:
        assert code == -signal.SIGKILL
    partial = len(read_all(out))
    assert partial < 30000, "the worker was stopped before draining the topic"
    restarted = start_worker(env, "--until-idle", "5", log_path=log)
    assert restarted.wait(timeout=300) == 0, log.read_text()[-3000:]
    assert_exactly_once(raw, out, dlq)


def test_at_least_once_delivers_every_record(tmp_path: Path, keys_file: Path) -> None:
    env, raw, out, dlq = setup(tmp_path, keys_file, 1500)
    env["STREAM_ANON_DELIVERY"] = "at_least_once"
    proc = start_worker(env, "--until-idle", "5", log_path=tmp_path / "worker.log")
    assert proc.wait(timeout=300) == 0, (tmp_path / "worker.log").read_text()[-3000:]
    # without a crash there is nothing to replay, so even at-least-once lands each record once
    assert_exactly_once(raw, out, dlq)
