"""A configuration or connectivity error is a clear message and a non-zero exit, never a silent stall."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from kafkatools import REPO, create_topics, unique, worker_env

pytestmark = pytest.mark.broker


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream_anon", "run", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_missing_topics_exit_2_naming_them(broker: str) -> None:
    raw = unique("raw")
    create_topics([raw], partitions=1)
    env = worker_env(
        input_topics=[raw],
        output_topic="no-such-out",
        dlq_topic="no-such-dlq",
        schemas_dir=REPO / "schemas",
        metrics_port=0,
        output_key="keep",
    )
    result = run(env)
    assert result.returncode == 2
    assert "no-such-out" in result.stderr and "no-such-dlq" in result.stderr


def test_unreachable_broker_exits_2_within_the_connect_timeout(broker: str) -> None:
    env = worker_env(schemas_dir=REPO / "schemas", metrics_port=0, output_key="keep", connect_timeout_s=3)
    env["STREAM_ANON_BOOTSTRAP_SERVERS"] = "127.0.0.1:1"
    result = run(env)
    assert result.returncode == 2
    assert "cannot reach Kafka at 127.0.0.1:1" in result.stderr


def test_bad_configuration_exits_2_with_the_key(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("delivery: sometimes\n")
    result = run(worker_env(), "--config", str(config))
    assert result.returncode == 2
    assert "delivery" in result.stderr


def test_a_group_readable_keys_file_is_refused(tmp_path: Path, broker: str) -> None:
    keys = tmp_path / "keys.json"
    subprocess.run(
        [sys.executable, "-m", "stream_anon", "keys", "generate", "--output", str(keys)], check=True
    )
    keys.chmod(0o644)
    raw = unique("raw")
    create_topics([raw, raw + "-out", raw + "-dlq"], partitions=1)
    env = worker_env(
        input_topics=[raw],
        output_topic=raw + "-out",
        dlq_topic=raw + "-dlq",
        schemas_dir=REPO / "schemas",
        keys_file=keys,
        metrics_port=0,
    )
    result = run(env)
    assert result.returncode == 2
    assert "chmod 600" in result.stderr
