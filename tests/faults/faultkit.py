"""Shared parts of the fault scenarios: the exactly-once audit, the worker's probes and memory, and a
second broker of our own for the scenario that stops it. The ticket records and their paced producer are
in tests/tickets.py (the cluster scenarios write them too)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kafkatools
import psutil
from confluent_kafka import Consumer, TopicPartition
from kafkatools import REPO, Read, unique
from tickets import SCHEMAS


@contextlib.contextmanager
def broker_at(bootstrap: str) -> Iterator[None]:
    """kafkatools' helpers (create_topics, read_all, worker_env) pointed at another broker for a while."""
    saved = kafkatools.BOOTSTRAP
    kafkatools.BOOTSTRAP = bootstrap
    try:
        yield
    finally:
        kafkatools.BOOTSTRAP = saved


def fault_env(raw: str, out: str, dlq: str, **settings: Any) -> dict[str, str]:
    """The worker's environment for a scenario: unique group and transactional id, our schemas, no keys."""
    base: dict[str, Any] = {
        "input_topics": [raw],
        "output_topic": out,
        "dlq_topic": dlq,
        "group_id": unique("g"),
        "transactional_id": unique("tx"),
        "schemas_dir": SCHEMAS,
        "output_key": "keep",
        "metrics_port": 0,
        "batch_size": 200,
        "log_format": "json",
        # a killed member holds its partitions until its session times out: keep scenarios short
        "kafka": json.dumps({"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}),
    }
    base.update(settings)
    env: dict[str, str] = kafkatools.worker_env(**base)
    return env


@dataclass
class Audit:
    """Where every input offset ended up, read with read_committed."""

    inputs: int
    sanitized: int
    dead_lettered: int
    lost: int
    duplicated: int
    reasons: Counter[str] = field(default_factory=Counter)

    def assert_exactly_once(self) -> None:
        assert self.lost == 0, f"{self.lost} of {self.inputs} input records lost"
        assert self.duplicated == 0, f"{self.duplicated} input records published more than once"


def source_of(r: Read) -> tuple[int, int]:
    return int(r.headers["stream-anon.source.partition"]), int(r.headers["stream-anon.source.offset"])


def audit(raw: str, out: str, dlq: str) -> Audit:
    expected = {(r.partition, r.offset) for r in kafkatools.read_all(raw)}
    sanitized = kafkatools.read_all(out)
    dead = kafkatools.read_all(dlq)
    seen: Counter[tuple[int, int]] = Counter(source_of(r) for r in [*sanitized, *dead])
    return Audit(
        inputs=len(expected),
        sanitized=len(sanitized),
        dead_lettered=len(dead),
        lost=len(expected - set(seen)),
        duplicated=sum(n - 1 for n in seen.values() if n > 1) + len(set(seen) - expected),
        reasons=Counter(r.headers["stream-anon.reason"] for r in dead),
    )


def committed_count(topics: list[str]) -> int:
    """Records visible to read_committed readers right now (end offsets minus markers are not exact:
    this counts by reading)."""
    return sum(len(kafkatools.read_all(t, idle_s=1.0)) for t in topics)


def wait_until(predicate: Any, timeout_s: float, what: str, every_s: float = 1.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every_s)
    raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def end_offsets(bootstrap: str, topic: str, read_committed: bool) -> dict[int, int]:
    """Per partition: the high watermark, or the last stable offset for read_committed."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("probe"),
            "isolation.level": "read_committed" if read_committed else "read_uncommitted",
        }
    )
    try:
        md = consumer.list_topics(topic, timeout=10)
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in md.topics[topic].partitions
        }
    finally:
        consumer.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(port: int, path: str, timeout_s: float = 3.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout_s) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()
    except (urllib.error.URLError, OSError) as exc:
        return 0, str(exc)


class RssSampler(threading.Thread):
    """Samples a process's resident memory every ``every_s`` seconds."""

    def __init__(self, pid: int, every_s: float = 0.5) -> None:
        super().__init__(daemon=True, name=f"rss-{pid}")
        self.process = psutil.Process(pid)
        self.every_s = every_s
        self.samples: list[tuple[float, int]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        t0 = time.monotonic()
        while not self._halt.is_set():
            try:
                self.samples.append((time.monotonic() - t0, self.process.memory_info().rss))
            except psutil.Error:
                return
            self._halt.wait(self.every_s)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

    @property
    def peak_mb(self) -> float:
        return max(rss for _, rss in self.samples) / 2**20


def stop_worker(proc: subprocess.Popen[bytes], timeout_s: float = 60) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=timeout_s)


# --- a broker of our own --------------------------------------------------------------------------------


class OwnBroker:
    """A second single-node broker from the same cached jars, via scripts/kafka.sh with its own ports,
    cache and run directory, so stopping it never disturbs the shared broker on 9092."""

    def __init__(self, home: Path) -> None:
        self.home = home
        cache = home / "cache"
        cache.mkdir(parents=True, exist_ok=True)
        # the jars (and their .resolved stamp) are shared by a symlink; the lock file and run dir are ours
        libs = REPO / ".cache" / "kafka" / "libs"
        if not (cache / "libs").exists():
            (cache / "libs").symlink_to(libs)
        self.port, self.controller_port = free_port(), free_port()
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("STREAM_ANON_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS", "KAFKA_HOME")
        }
        self.env.update(
            KAFKA_CACHE=str(cache),
            KAFKA_RUN=str(cache / "run"),
            KAFKA_PORT=str(self.port),
            KAFKA_CONTROLLER_PORT=str(self.controller_port),
            KAFKA_HEAP_OPTS="-Xms128m -Xmx512m",
            KAFKA_STOP_TIMEOUT="30",
        )
        self.bootstrap = f"127.0.0.1:{self.port}"

    def _script(self, *args: str) -> None:
        result = subprocess.run(
            [str(REPO / "scripts" / "kafka.sh"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, f"kafka.sh {' '.join(args)}: {result.stdout}{result.stderr}"

    def start(self) -> None:
        self._script("start")

    def stop(self) -> None:
        self._script("stop")

    def start_again(self) -> None:
        self._script("start-again")

    def remove(self) -> None:
        with contextlib.suppress(Exception):
            self._script("stop")
        shutil.rmtree(self.home / "cache" / "run", ignore_errors=True)
