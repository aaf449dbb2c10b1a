"""Security defaults: TLS/SASL settings reach librdkafka unchanged, a readable keys file is refused, and
secrets never appear in the logs or in --help."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from faultkit import fault_env
from kafkatools import create_topics, unique

from stream_anon.config import Settings

SECRET = "pw-Zq8-never-print-me"
SECURITY = {
    "security.protocol": "SASL_SSL",
    "sasl.mechanism": "SCRAM-SHA-512",
    "sasl.username": "stream-anon",
    "sasl.password": SECRET,
    "ssl.endpoint.identification.algorithm": "https",
}


def run(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream_anon", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_the_kafka_mapping_reaches_librdkafka_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREAM_ANON_BOOTSTRAP_SERVERS", raising=False)  # the environment wins over arguments
    settings = Settings(kafka=SECURITY, bootstrap_servers="broker:9093", schemas_dir=Path("schemas"))
    assert settings.librdkafka() == {"bootstrap.servers": "broker:9093", **SECURITY}
    assert settings.redacted()["kafka"]["sasl.password"] == "***"


def test_the_kafka_mapping_from_a_secrets_file_reaches_librdkafka(tmp_path: Path) -> None:
    secrets = tmp_path / "kafka-secrets.yaml"
    secrets.write_text(f"sasl.password: {SECRET}\n")
    settings = Settings(
        kafka={k: v for k, v in SECURITY.items() if k != "sasl.password"},
        kafka_secrets_file=secrets,
        schemas_dir=Path("schemas"),
    )
    assert settings.librdkafka()["sasl.password"] == SECRET


@pytest.mark.broker
def test_sasl_ssl_against_a_plaintext_broker_fails_in_librdkafka_without_printing_the_password(
    broker: str, tmp_path: Path
) -> None:
    raw, out, dlq = unique("raw"), unique("out"), unique("dlq")
    create_topics([raw, out, dlq], partitions=1)
    env = fault_env(
        raw, out, dlq, connect_timeout_s=6, kafka=json.dumps({**SECURITY, "sasl.mechanism": "PLAIN"})
    )
    result = run(env, "run", timeout=180)
    text = result.stdout + result.stderr
    assert result.returncode == 2, text[-2000:]
    assert "cannot reach Kafka" in result.stderr
    # librdkafka itself tried SSL on the plaintext port: its own log lines say so
    assert "SSL" in text or "ssl" in text, text[-2000:]
    assert SECRET not in text


@pytest.mark.broker
def test_a_world_or_group_readable_keys_file_is_refused_with_exit_2(broker: str, tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    subprocess.run(
        [sys.executable, "-m", "stream_anon", "keys", "generate", "--output", str(keys)], check=True
    )
    raw, out, dlq = unique("raw"), unique("out"), unique("dlq")
    create_topics([raw, out, dlq], partitions=1)
    env = fault_env(raw, out, dlq, keys_file=keys, output_key="hmac")
    for mode in (0o644, 0o640, 0o604):
        keys.chmod(mode)
        result = run(env, "run")
        assert result.returncode == 2, result.stderr
        assert f"keys file {keys} is accessible by group or others" in result.stderr
        assert f"chmod 600 {keys}" in result.stderr
        assert "Traceback" not in result.stderr
        for version in json.loads(keys.read_text())["keys"]["default"]["versions"].values():
            assert version["secret"] not in result.stdout + result.stderr


def test_help_never_shows_secrets_from_the_environment(tmp_path: Path) -> None:
    env = fault_env("raw", "out", "dlq", kafka=json.dumps(SECURITY))
    for args in (["--help"], ["run", "--help"], ["anonymize", "--help"], ["keys", "--help"]):
        result = run(env, *args)
        assert result.returncode == 0, result.stderr
        assert SECRET not in result.stdout + result.stderr


@pytest.mark.broker
def test_a_running_worker_never_logs_the_kafka_secrets(broker: str, tmp_path: Path) -> None:
    raw, out, dlq = unique("raw"), unique("out"), unique("dlq")
    create_topics([raw, out, dlq], partitions=1)
    # a harmless secret-bearing key librdkafka accepts on a PLAINTEXT connection
    env = fault_env(raw, out, dlq, log_level="debug", kafka=json.dumps({"sasl.password": SECRET}))
    result = run(env, "run", "--until-idle", "3")
    assert result.returncode == 0, result.stderr[-2000:]
    assert SECRET not in result.stdout + result.stderr
