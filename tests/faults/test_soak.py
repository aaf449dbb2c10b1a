"""Soak: a steady moderate load for STREAM_ANON_SOAK_SECONDS (default 600). Throughput stays flat and the
worker's resident memory does not grow beyond a stated bound."""

from __future__ import annotations

import itertools
import os
import statistics
import time
from pathlib import Path

import pytest
from faultkit import RssSampler, audit, fault_env, free_port, http_get, stop_worker, wait_until
from kafkatools import BOOTSTRAP, create_topics, start_worker, unique
from tickets import PacedProducer

pytestmark = [pytest.mark.broker, pytest.mark.slow]

SOAK_S = float(os.environ.get("STREAM_ANON_SOAK_SECONDS", "600"))
RATE = 200.0  # records per second: moderate, well under the worker's capacity on this machine
WARM_UP_S = 20.0
WINDOWS = 10  # throughput is compared across this many equal windows after the warm-up
FLATNESS = 0.30  # every window within ±30 % of the median
RSS_GROWTH_BOUND_MB = 40.0  # from the end of the warm-up to the end of the soak


def produced_total(port: int) -> float:
    status, page = http_get(port, "/metrics")
    if status != 200:
        return float("nan")
    total = 0.0
    for line in page.splitlines():
        if line.startswith(("stream_anon_records_consumed_total", "stream_anon_consumed_records_total")):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_steady_load_keeps_throughput_flat_and_memory_bounded(broker: str, tmp_path: Path) -> None:
    raw, out, dlq = unique("soak-raw"), unique("soak-out"), unique("soak-dlq")
    create_topics([raw, out, dlq], partitions=3)
    count = int(RATE * (SOAK_S + WARM_UP_S))
    port = free_port()
    log = tmp_path / "worker.log"
    worker = start_worker(fault_env(raw, out, dlq, metrics_port=port), log_path=log)
    wait_until(lambda: http_get(port, "/readyz")[0] == 200, 120, "readiness")
    producer = PacedProducer({"bootstrap.servers": BOOTSTRAP}, raw, count=count, rate=RATE)
    producer.start()
    rss = RssSampler(worker.pid, every_s=2.0)
    rss.start()
    time.sleep(WARM_UP_S)
    rss_start = rss.samples[-1][1] / 2**20
    window_s = SOAK_S / WINDOWS
    marks = [produced_total(port)]
    for _ in range(WINDOWS):
        time.sleep(window_s)
        assert worker.poll() is None, log.read_text()[-3000:]
        marks.append(produced_total(port))
    rss.stop()
    rss_end = rss.samples[-1][1] / 2**20
    rates = [(b - a) / window_s for a, b in itertools.pairwise(marks)]
    median = statistics.median(rates)
    producer.join(timeout=120)
    wait_until(lambda: audit(raw, out, dlq).lost == 0, 120, "the worker to catch up", 3)
    assert stop_worker(worker) == 0
    result = audit(raw, out, dlq)
    print(
        f"soak: {SOAK_S:.0f}s at {RATE:.0f}/s, window rates {[round(r) for r in rates]}, "
        f"median {median:.0f}/s, "
        f"rss {rss_start:.0f} -> {rss_end:.0f} MB (peak {rss.peak_mb:.0f}), {result}"
    )
    assert all(abs(r - median) <= FLATNESS * median for r in rates), f"throughput not flat: {rates}"
    assert rss_end - rss_start <= RSS_GROWTH_BOUND_MB, f"RSS grew {rss_end - rss_start:.0f} MB"
    result.assert_exactly_once()
