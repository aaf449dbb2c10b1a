"""Deploying rules against the real Schema Registry: ``lint --registry`` warns before a refused derived
schema reaches the worker; ``schemas register`` registers derived schemas for workers that may not write
(``auto_register_derived: false``), under the configured subject naming strategy."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from kafkatools import REPO, create_topics, read_all, unique
from registrytools import client, produce_avro, register

from stream_anon.app import build_pipeline
from stream_anon.cli.rules import compile_file
from stream_anon.config import Settings
from stream_anon.datagen import generate_feedback
from stream_anon.keys import Keys
from stream_anon.worker import Worker

pytestmark = pytest.mark.broker

FEEDBACK = REPO / "schemas" / "feedback.avsc"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream_anon", *args], capture_output=True, text=True, timeout=120
    )


def variant(tmp_path: Path, name: str, rating_rule: object = "keep", record_name: str | None = None) -> Path:
    schema = json.loads(FEEDBACK.read_text())
    if record_name is not None:
        schema["name"] = record_name
    for field in schema["fields"]:
        if field["name"] == "rating":
            field["anon"] = rating_rule
    path = tmp_path / f"{name}.avsc"
    path.write_text(json.dumps(schema))
    return path


BUCKET = {"op": "generalize", "method": "bucket", "width": 2}


def test_lint_with_the_registry_reports_a_derived_schema_it_would_refuse(
    tmp_path: Path, registry: str
) -> None:
    topic = unique("sanitized")
    register(f"{topic}-value", json.dumps(compile_file(FEEDBACK, None).derived_schema))
    bucketed = variant(tmp_path, "bucketed", BUCKET)

    refused = cli("lint", "--registry", registry, "--output-topic", topic, str(bucketed))
    assert refused.returncode == 1, refused.stderr
    assert (
        f"{bucketed}: (derived schema): derived_schema_rejected: {topic}-value would refuse it"
        in refused.stdout
    )
    assert "BACKWARD" in refused.stdout

    fine = cli("lint", "--registry", registry, "--output-topic", topic, str(FEEDBACK))
    assert fine.returncode == 0, fine.stdout + fine.stderr
    first = cli("lint", "--registry", registry, "--output-topic", unique("new"), str(bucketed))
    assert first.returncode == 0, "the first version of a subject is always accepted"

    wrong = cli("lint", "--registry", registry.split("/apis/")[0], "--output-topic", topic, str(FEEDBACK))
    assert wrong.returncode == 2
    assert "not a Confluent-compatible schema registry" in wrong.stderr


def test_schemas_register_then_a_worker_that_may_not_register_uses_it(
    tmp_path: Path, broker: str, registry: str
) -> None:
    record_name = f"Feedback_{uuid.uuid4().hex[:8]}"
    schema = variant(tmp_path, "feedback", record_name=record_name)
    raw, out, dlq = unique("raw"), unique("out"), unique("dlq")
    create_topics([raw, out, dlq], partitions=1)
    keys = tmp_path / "keys.json"
    Keys.generate().save(keys)
    config = tmp_path / "worker.yaml"
    config.write_text(
        f"schema_registry_url: {registry}\noutput_topic: {out}\n"
        "schema_registry:\n  subject_name_strategy: record_name\n  auto_register_derived: false\n"
    )
    settings = Settings(
        input_topics=[raw], output_topic=out, dlq_topic=dlq, group_id=unique("g"),
        schema_registry_url=registry, keys_file=keys, metrics_port=0, output_key="drop",
        schema_registry={"subject_name_strategy": "record_name", "auto_register_derived": False},
    )  # fmt: skip
    subject = f"com.example.feedback.{record_name}"

    def run_worker() -> None:
        worker = Worker(settings, build_pipeline(settings))
        thread = threading.Thread(target=worker.run, kwargs={"until_idle_s": 3.0})
        thread.start()
        thread.join(timeout=120)
        assert not thread.is_alive()

    # not registered yet: the worker does not register it, its records are dead-lettered with the remedy
    produce_avro(raw, schema.read_text(), generate_feedback(5, seed=1))
    run_worker()
    dead = read_all(dlq)
    assert [d.headers["stream-anon.reason"] for d in dead] == ["derived_schema_rejected"] * 5
    assert dead[0].headers["stream-anon.registry.subject"] == subject
    assert "stream-anon schemas register" in dead[0].headers["stream-anon.registry.message"]
    assert subject not in client().get_subjects()

    registered = cli("schemas", "register", "--config", str(config), str(schema))
    assert registered.returncode == 0, registered.stderr
    assert f"registered under {subject}" in registered.stdout
    settings.group_id = unique("g")  # a fresh worker reads the topic again
    produce_avro(raw, schema.read_text(), generate_feedback(5, seed=2))
    run_worker()
    derived = client().get_latest_version(subject)
    sanitized = read_all(out)
    assert len(sanitized) == 10
    assert all(int.from_bytes((r.value or b"")[1:5], "big") == derived.schema_id for r in sanitized)

    # a rule change the registry refuses is refused by the command too, exit 1
    bucketed = variant(tmp_path, "bucketed", BUCKET, record_name=record_name)
    again = cli("schemas", "register", "--config", str(config), str(bucketed))
    assert again.returncode == 1 and f"refused under {subject}" in again.stderr


def test_the_demo_runs_through_the_registry_and_shows_the_subjects(
    tmp_path: Path, broker: str, registry: str
) -> None:
    done = cli(
        "demo", "--registry", registry, "--count", "30", "--show", "0", "--workdir", str(tmp_path),
        "--bootstrap-servers", broker, "--schemas-dir", str(REPO / "schemas"),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "in: 33   sanitized: 30   dead-lettered: 3" in done.stdout
    subjects = next(line for line in done.stdout.splitlines() if line.startswith("registered subjects: "))
    assert "demo.feedback.raw-value (version" in subjects
    assert "demo.feedback.sanitized-value (version" in subjects
