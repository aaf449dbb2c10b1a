"""Leader failover and a rolling restart in the middle of a stream: 0 lost, 0 duplicated, counted per
input id with read_committed. The worker runs with only its ACLs; the producer is User:producer."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from clusterkit import (
    Scenario,
    active_controller,
    audit,
    client,
    grant,
    grant_simple,
    leader_of,
    read_committed,
    script,
    start_worker,
    wait_until,
    worker_acls,
)
from tickets import PacedProducer

COUNT = 3000
RATE = 150.0  # records per second: the stream lasts ~20 s, long enough to fail over in its middle


def sanitized_so_far(s: Scenario) -> int:
    return len(read_committed(s.out, idle_s=1))


Disruption = Callable[[Scenario, PacedProducer], None]


class Supervisor:
    """Restarts the worker when it exits 3, as Kubernetes restarts the pod: its watchdog ended it (a stall
    of 2 x transaction_timeout_s + 60 s), or its producer was fenced by the broker ending its
    transaction. Any other exit fails the test. The restarts are counted and reported."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config, self.log = config, log
        self.restarts = 0
        self.worker = start_worker(config, log)

    def check(self) -> None:
        code = self.worker.poll()
        if code == 3:
            self.restarts += 1
            self.worker = start_worker(self.config, self.log)
        elif code is not None:
            raise AssertionError(f"the worker exited ({code}):\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        self.worker.terminate()
        self.worker.wait(60)


def run_stream(tmp_path: Path, disrupt: Disruption, count: int = COUNT, rate: float = RATE) -> None:
    # a shorter transaction timeout bounds the watchdog at 2 x 20 + 60 = 100 s (default: 180 s)
    s = Scenario.create(tmp_path, transaction_timeout_s=20)
    grant(*worker_acls(s.config))
    grant_simple("User:producer", "TOPIC", s.raw, "WRITE")
    supervisor = Supervisor(s.config, tmp_path / "worker.log")
    producer = PacedProducer(client("producer"), s.raw, count, rate)

    def progressed(n: int) -> bool:
        supervisor.check()
        return sanitized_so_far(s) >= n

    try:
        # the stream starts once the worker consumes: its start-up (seconds under load) must not eat the
        # stream, or the disruption comes after the last record instead of in the middle
        wait_until(
            lambda: supervisor.check() is None and '"partitions_assigned"' in supervisor.log.read_text(),
            180,
            "the worker's partitions",
        )
        producer.start()
        # mid-stream: the worker has published a part, the producer is still writing
        wait_until(lambda: progressed(count // 5), 120, "the first fifth sanitized", every_s=2)
        disrupt(s, producer)
        producer.join(300)
        assert not producer.failed, producer.failed
        wait_until(lambda: progressed(count), 400, "every record sanitized", every_s=3)
    finally:
        supervisor.stop()
    result = audit(s, count)
    result.assert_exactly_once()
    assert (result.sanitized, result.dead_lettered) == (count, 0)
    # the figure docs/reliability.md reports: the longest pause in the sanitized output (its records'
    # timestamps are set when the worker produces them), printed for `pytest -s`
    stamps = sorted(m.timestamp()[1] for m in read_committed(s.out))
    pause = max(b - a for a, b in itertools.pairwise(stamps)) / 1000
    print(
        f"\n{tmp_path.name}: {count} records, 0 lost, 0 duplicated; longest output pause {pause:.1f}s; "
        f"worker restarts by its watchdog: {supervisor.restarts}"
    )


def kill_and_restart(node: int, producer: PacedProducer) -> None:
    assert producer.is_alive(), "the stream ended before the failover: not mid-stream"
    script("kill-node", str(node))
    time.sleep(8)  # the stream runs on two nodes for a while: new leaders, shrunken ISRs
    script("start-node", str(node))  # returns once the node is back in the ISR of a replicated topic


@pytest.mark.parametrize("role", ["raw-leader", "sanitized-leader", "controller"])
def test_sigkill_of_a_leader_mid_stream_loses_and_duplicates_nothing(tmp_path: Path, role: str) -> None:
    # The active controller is the quorum's leader, which stays put in a healthy cluster. Asking the quorum
    # takes a JVM start (Kafka's tool), seconds under load, which can outlast the rest of the stream: so
    # it is asked before the stream starts. The partition leaders are one admin request, asked mid-stream.
    controller = active_controller() if role == "controller" else None

    def disrupt(s: Scenario, producer: PacedProducer) -> None:
        node = {
            "raw-leader": lambda: leader_of(s.raw, 0),
            "sanitized-leader": lambda: leader_of(s.out, 0),
            "controller": lambda: controller,
        }[role]()
        assert node is not None
        kill_and_restart(node, producer)

    run_stream(tmp_path, disrupt)


def test_rolling_restart_under_load_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    def disrupt(_s: Scenario, producer: PacedProducer) -> None:
        for node in (1, 2, 3):
            assert producer.is_alive(), f"the stream ended before node {node} restarted: not under load"
            script("stop-node", str(node))  # SIGTERM: a controlled shutdown moves its leaders first
            script("start-node", str(node))  # back in the ISR before the next one goes

    # one node restart takes 20-40 s here: a slower, longer stream spans all three
    run_stream(tmp_path, disrupt, count=6000, rate=40.0)
