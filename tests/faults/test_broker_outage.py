"""The broker stops and comes back mid-stream: the worker waits (not ready meanwhile) and resumes, losing and
duplicating nothing. Uses a broker of its own (scripts/kafka.sh on other ports and another run directory),
so the shared broker on 9092 is never disturbed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import kafkatools
import pytest
from faultkit import (
    OwnBroker,
    PacedProducer,
    audit,
    broker_at,
    fault_env,
    free_port,
    http_get,
    stop_worker,
    wait_until,
)
from kafkatools import create_topics, start_worker, unique

pytestmark = [pytest.mark.broker, pytest.mark.slow]

OUTAGE_S = 20.0


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnBroker]:
    b = OwnBroker(tmp_path_factory.mktemp("broker2"))
    b.start()
    try:
        yield b
    finally:
        b.remove()


def test_worker_waits_through_a_broker_outage_and_resumes(own_broker: OwnBroker, tmp_path: Path) -> None:
    with broker_at(own_broker.bootstrap):
        raw, out, dlq = unique("raw"), unique("out"), unique("dlq")
        create_topics([raw, out, dlq], partitions=3)
        port = free_port()
        env = fault_env(raw, out, dlq, metrics_port=port)
        log = tmp_path / "worker.log"
        producer = PacedProducer(own_broker.bootstrap, raw, count=12_000, rate=300)
        producer.start()
        worker = start_worker(env, log_path=log)
        wait_until(lambda: http_get(port, "/readyz")[0] == 200, 90, "readiness before the outage")
        wait_until(lambda: len(kafkatools.read_all(out, idle_s=0.5)) > 1000, 120, "output before the outage")

        own_broker.stop()
        stopped_at = time.monotonic()
        not_ready: list[str] = []
        while time.monotonic() - stopped_at < OUTAGE_S:
            status, body = http_get(port, "/readyz")
            if status == 503:
                not_ready.append(body.strip())
            assert worker.poll() is None, f"worker exited during the outage: {log.read_text()[-3000:]}"
            time.sleep(1)
        own_broker.start_again()

        producer.join(timeout=600)
        assert producer.sent == 12_000 and not producer.failed, producer.failed[:5]
        wait_until(lambda: audit(raw, out, dlq).lost == 0, 300, "the worker to drain after the outage", 3)
        wait_until(lambda: http_get(port, "/readyz")[0] == 200, 60, "readiness after the outage")
        assert worker.poll() is None, "the same worker process kept running through the outage"
        assert stop_worker(worker) == 0, log.read_text()[-3000:]
        result = audit(raw, out, dlq)
        print(f"broker outage: not_ready_polls={len(not_ready)} first={not_ready[:1]} {result}")
        assert not_ready, "readiness reported not-ready (503) while the broker was gone"
        assert result.inputs == 12_000
        result.assert_exactly_once()
        assert result.sanitized == 12_000
