"""Case 1, the broker's ceiling: Kafka's own ProducerPerformance and ConsumerPerformance tools.

They run from the jars of the Kafka distribution (``.cache/kafka/libs``) at the benchmark's mean record
size, with the producer settings of the workers (acks=all, idempotent, linger.ms=5, lz4) and librdkafka's
batch size (batch.size=1000000: the Java default of 16 kB caps a loaded single broker at a few
thousand requests per second, which measures round trips, not the broker).
"""

from __future__ import annotations

import re
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.children import REPO, reap

LIBS = REPO / ".cache" / "kafka" / "libs"
_INTERVAL = re.compile(r"^\d+ records sent, (?P<rate>[\d.]+) records/sec", re.MULTILINE)
_PRODUCED = re.compile(
    r"(?P<n>\d+) records sent, (?P<rate>[\d.]+) records/sec \((?P<mb>[\d.]+) MB/sec\), "
    r"(?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency, (?P<p50>\d+) ms 50th, "
    r"(?P<p95>\d+) ms 95th, (?P<p99>\d+) ms 99th"
)


class KafkaToolError(RuntimeError):
    pass


def available() -> bool:
    return LIBS.is_dir() and any(LIBS.glob("kafka-tools-*.jar"))


def kafka_version() -> str | None:
    for jar in LIBS.glob("kafka-clients-*.jar"):
        return jar.stem.removeprefix("kafka-clients-")
    return None


def _java(tool: str, args: list[str], log: Path, timeout_s: float) -> tuple[str, dict[str, float]]:
    started = time.monotonic()
    out_path = log.with_suffix(".out")
    with log.open("ab") as sink, out_path.open("w", encoding="utf-8") as out_file:
        proc = subprocess.Popen(
            ["java", "-Xms256m", "-Xmx512m", "-cp", f"{LIBS}/*", f"org.apache.kafka.tools.{tool}", *args],
            stdout=out_file,
            stderr=sink,
        )
        usage = reap(proc, started, timeout_s)  # wait4, not wait: the kernel's account of this process
    out = out_path.read_text(encoding="utf-8")
    with log.open("a", encoding="utf-8") as sink:
        sink.write(out)
    if usage.exit_code != 0:
        raise KafkaToolError(f"{tool} exited with {usage.exit_code} (log: {log})")
    return out, {
        "max_rss_mb": usage.max_rss_mb,
        "cpu_seconds": usage.cpu_seconds,
        "wall_seconds": usage.wall_seconds,
    }


def producer(
    bootstrap: str, topic: str, records: int, size: int, throughput: float, log: Path
) -> dict[str, Any]:
    out, usage = _java(
        "ProducerPerformance",
        [
            "--topic", topic, "--num-records", str(records), "--record-size", str(size),
            "--throughput", str(int(throughput)),
            "--producer-props", f"bootstrap.servers={bootstrap}", "acks=all", "enable.idempotence=true",
            "linger.ms=5", "compression.type=lz4", "batch.size=1000000",
        ],
        log,
        timeout_s=600,
    )  # fmt: skip
    summaries = list(_PRODUCED.finditer(out))  # progress lines first, the summary last
    if not summaries:
        raise KafkaToolError(f"ProducerPerformance printed no summary (log: {log})")
    match = summaries[-1]
    # the 5-second progress lines; the first holds the JVM's and the client's start-up
    intervals = [float(m["rate"]) for m in _INTERVAL.finditer(out)][1:-1]
    return {
        "steady_records_per_s": statistics.median(intervals) if intervals else None,
        "records": int(match["n"]),
        "records_per_s": float(match["rate"]),
        "mb_per_s": float(match["mb"]),
        "latency_p50_ms": float(match["p50"]),
        "latency_p99_ms": float(match["p99"]),
        "latency_avg_ms": float(match["avg"]),
        **usage,
    }


def consumer(bootstrap: str, topic: str, records: int, log: Path) -> dict[str, Any]:
    out, usage = _java(
        "ConsumerPerformance",
        ["--bootstrap-server", bootstrap, "--topic", topic, "--messages", str(records), "--timeout", "30000"],
        log,
        timeout_s=600,
    )
    lines = [line for line in out.splitlines() if line.strip()]
    header = next((i for i, line in enumerate(lines) if line.startswith("start.time")), None)
    if header is None or header + 1 >= len(lines):
        raise KafkaToolError(f"ConsumerPerformance printed no summary (log: {log})")
    names = [n.strip() for n in lines[header].split(",")]
    values = [v.strip() for v in lines[header + 1].split(",")]
    row = dict(zip(names, values, strict=False))
    consumed = int(row["data.consumed.in.nMsg"])
    # fetch.* excludes the group join (rebalance.time.ms), which has nothing to do with throughput
    return {
        "records": consumed,
        "records_per_s": float(row["fetch.nMsg.sec"]),
        "mb_per_s": float(row["fetch.MB.sec"]),
        **usage,
    }
