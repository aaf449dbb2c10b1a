"""Registry failures by kind, against the real Schema Registry and the real broker.

* a derived schema the registry refuses (409): its writer schema's records are dead-lettered with the
  registry's answer, other schemas keep flowing (it used to stall every partition with healthy probes);
* a URL that is not the registry's API (the bare Apicurio URL answers 404 to everything): the start-up
  check exits 2 naming the URL and the answer (it used to dead-letter every record as unknown_schema);
* a registry-only configuration runs where there is no ./schemas (it used to exit 2 there);
* refused credentials: exit 2; an unavailable registry (503, dropped connections, 404 pages that are not
  the registry's): records wait, /readyz is not ready, nothing is dead-lettered, and work resumes by
  itself. These two go through ``FailingRegistryProxy`` (tests/registryproxy.py), a stand-in in front of
  the real registry, because the real one cannot be made to fail that way on demand.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from kafkatools import REPO, create_topics, read_all, unique, worker_env
from registryproxy import FailingRegistryProxy, Mode
from registrytools import REGISTRY_URL, client, produce_avro, register

from stream_anon.app import build_pipeline
from stream_anon.cli.rules import compile_file
from stream_anon.config import Settings
from stream_anon.datagen import generate_feedback
from stream_anon.health import Health
from stream_anon.keys import Keys
from stream_anon.metrics import Metrics
from stream_anon.service import WorkerObserver
from stream_anon.worker import Worker

pytestmark = pytest.mark.broker

FEEDBACK = REPO / "schemas" / "feedback.avsc"


def bucketed_rating(tmp_path: Path) -> Path:
    """feedback.avsc with one rule changed (rating: keep -> bucket): the raw schema is unchanged for the
    registry, but the derived schema's rating turns from int to string, which BACKWARD refuses."""
    schema = json.loads(FEEDBACK.read_text())
    for field in schema["fields"]:
        if field["name"] == "rating":
            field["anon"] = {"op": "generalize", "method": "bucket", "width": 2}
    path = tmp_path / "feedback-bucketed.avsc"
    path.write_text(json.dumps(schema))
    return path


def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.json"
    Keys.generate().save(path)
    return path


def counter(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_a_refused_derived_schema_dead_letters_its_records_and_others_keep_flowing(
    tmp_path: Path, broker: str, registry: str
) -> None:
    raw, out, dlq = unique("raw"), unique("out"), unique("dlq")
    create_topics([raw, out, dlq], partitions=3)
    # the sanitized subject already holds v1's derived schema, as after an earlier deployment
    register(f"{out}-value", json.dumps(compile_file(FEEDBACK, None).derived_schema))
    bucketed = bucketed_rating(tmp_path)
    records = generate_feedback(60, seed=11)
    produce_avro(raw, FEEDBACK.read_text(), records[:20])
    produce_avro(raw, bucketed.read_text(), records[20:40])
    produce_avro(raw, FEEDBACK.read_text(), records[40:])

    settings = Settings(
        input_topics=[raw], output_topic=out, dlq_topic=dlq, group_id=unique("g"),
        schema_registry_url=registry, keys_file=keys_file(tmp_path), metrics_port=0, output_key="drop",
    )  # fmt: skip
    metrics = Metrics()
    observer = WorkerObserver(metrics, Health())
    pipeline = build_pipeline(settings, on_rejected=observer.derived_schema_rejected)
    worker = Worker(settings, pipeline, observer)
    thread = threading.Thread(target=worker.run, kwargs={"until_idle_s": 4.0})
    thread.start()
    thread.join(timeout=90)
    stalled = thread.is_alive()
    worker.stop()
    thread.join(timeout=30)
    assert not stalled, "the worker stalled on the refused derived schema instead of going on"

    assert len(read_all(out)) == 40, "v1 records on every partition are sanitized"
    dead = read_all(dlq)
    assert len(dead) == 20
    for d in dead:
        assert d.headers["stream-anon.reason"] == "derived_schema_rejected"
        assert d.headers["stream-anon.registry.subject"] == f"{out}-value"
        assert d.headers["stream-anon.registry.message"], "the registry's own answer is in the headers"
    assert counter(metrics, "stream_anon_registry_errors_total", kind="derived_schema_rejected") >= 1
    assert counter(
        metrics, "stream_anon_records_dead_lettered_total", topic=raw, reason="derived_schema_rejected"
    )


def run_cli(
    env: dict[str, str], *args: str, timeout: float = 120, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream_anon", "run", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def test_a_registry_only_configuration_runs_outside_the_repository(
    tmp_path: Path, broker: str, registry: str
) -> None:
    """No schemas_dir written: it used to default to ./schemas and fail where there is none."""
    raw, out, dlq = unique("raw"), unique("out"), unique("dlq")
    create_topics([raw, out, dlq], partitions=1)
    produce_avro(raw, FEEDBACK.read_text(), generate_feedback(5, seed=8))
    config = tmp_path / "worker.yaml"
    config.write_text(
        f"schema_registry_url: {registry}\ninput_topics: [{raw}]\noutput_topic: {out}\ndlq_topic: {dlq}\n"
        f"group_id: {unique('g')}\nmetrics_port: 0\noutput_key: keep\nkeys_file: {keys_file(tmp_path)}\n"
    )
    env = worker_env()
    result = run_cli(env, "--config", str(config), "--until-idle", "4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(read_all(out)) == 5


def test_a_url_that_is_not_the_registry_api_stops_the_worker_at_start(broker: str, registry: str) -> None:
    raw, out, dlq = unique("raw"), unique("out"), unique("dlq")
    create_topics([raw, out, dlq], partitions=1)
    produce_avro(raw, FEEDBACK.read_text(), generate_feedback(5, seed=2))
    bare = registry.split("/apis/")[0]  # Apicurio's base URL: every Confluent API call answers 404
    env = worker_env(
        input_topics=[raw], output_topic=out, dlq_topic=dlq, group_id=unique("g"), schema_registry_url=bare,
        metrics_port=0, output_key="keep",
    )  # fmt: skip
    result = run_cli(env, "--until-idle", "5")
    assert result.returncode == 2, result.stderr
    assert bare in result.stderr and "HTTP 404" in result.stderr
    assert "not a Confluent-compatible schema registry" in result.stderr
    assert read_all(dlq) == [], "no record is condemned for a wrong URL"


def test_refused_credentials_stop_the_worker_at_start_and_right_ones_work(
    tmp_path: Path, broker: str, registry: str
) -> None:
    raw, out, dlq = unique("raw"), unique("out"), unique("dlq")
    create_topics([raw, out, dlq], partitions=1)
    produce_avro(raw, FEEDBACK.read_text(), generate_feedback(5, seed=3))
    password = tmp_path / "registry-password"
    password.write_text("s3cret\n")
    with FailingRegistryProxy(registry, credentials=("anon", "s3cret")) as proxy:
        env = worker_env(
            input_topics=[raw], output_topic=out, dlq_topic=dlq, group_id=unique("g"),
            schema_registry_url=proxy.url, metrics_port=0, output_key="keep", keys_file=keys_file(tmp_path),
        )  # fmt: skip
        refused = run_cli(env, "--until-idle", "5")
        assert refused.returncode == 2, refused.stderr
        assert proxy.url in refused.stderr and "refused the credentials" in refused.stderr

        env["STREAM_ANON_SCHEMA_REGISTRY__USERNAME"] = "anon"
        env["STREAM_ANON_SCHEMA_REGISTRY__PASSWORD_FILE"] = str(password)
        accepted = run_cli(env, "--until-idle", "5")
        assert accepted.returncode == 0, accepted.stderr
    assert len(read_all(out)) == 5


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "registry.crt", tmp_path / "registry.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_the_registry_client_verifies_tls_with_the_configured_ca(
    tmp_path: Path, broker: str, registry: str
) -> None:
    raw, out, dlq = unique("raw"), unique("out"), unique("dlq")
    create_topics([raw, out, dlq], partitions=1)
    produce_avro(raw, FEEDBACK.read_text(), generate_feedback(5, seed=4))
    cert, key = self_signed(tmp_path)
    with FailingRegistryProxy(registry, certificate=(cert, key)) as proxy:
        assert proxy.url.startswith("https://")
        env = worker_env(
            input_topics=[raw], output_topic=out, dlq_topic=dlq, group_id=unique("g"),
            schema_registry_url=proxy.url, metrics_port=0, output_key="keep", keys_file=keys_file(tmp_path),
            connect_timeout_s=2,
        )  # fmt: skip
        untrusted = run_cli(env, "--until-idle", "5")
        assert untrusted.returncode == 2, untrusted.stderr
        assert proxy.url in untrusted.stderr and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
        env["STREAM_ANON_SCHEMA_REGISTRY__CA_LOCATION"] = str(cert)
        trusted = run_cli(env, "--until-idle", "5")
        assert trusted.returncode == 0, trusted.stderr
    assert len(read_all(out)) == 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError as exc:
        return 0, str(exc)


def wait_for(what: str, check: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@contextmanager
def worker_process(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "stream_anon", "run"], env=env, stdout=out, stderr=out)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_an_unavailable_registry_holds_records_back_not_ready_and_work_resumes_by_itself(
    tmp_path: Path, broker: str, registry: str
) -> None:
    raw, out, dlq = unique("raw"), unique("out"), unique("dlq")
    create_topics([raw, out, dlq], partitions=2)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    v2 = (REPO / "schemas" / "feedback-v2.avsc").read_text()
    with FailingRegistryProxy(registry) as proxy:
        env = worker_env(
            input_topics=[raw], output_topic=out, dlq_topic=dlq, group_id=unique("g"),
            schema_registry_url=proxy.url, metrics_port=port, output_key="keep",
            keys_file=keys_file(tmp_path),
        )  # fmt: skip
        with worker_process(env, tmp_path / "worker.log") as proc:
            produce_avro(raw, FEEDBACK.read_text(), generate_feedback(20, seed=5))
            wait_for("20 sanitized records", lambda: len(read_all(out, idle_s=1)) == 20)
            wait_for("ready", lambda: get(base + "/readyz")[0] == 200)

            # the registry fails: 503 first, then connections dropped without an answer
            proxy.mode = Mode.SERVICE_UNAVAILABLE
            produce_avro(raw, v2, generate_feedback(20, seed=6, schema_version=2))
            wait_for("not ready", lambda: get(base + "/readyz")[0] == 503)
            reason = get(base + "/readyz")[1]
            assert "schema registry" in reason
            assert get(base + "/healthz")[0] == 200, "alive: waiting is not a stall"
            proxy.mode = Mode.DROP
            failed_before = proxy.failed
            wait_for("retries while connections drop", lambda: proxy.failed > failed_before, 40)
            # an ingress that routes the path elsewhere answers 404 without a registry error code: that is
            # not "schema unknown", so the held records wait, they are not dead-lettered as unknown_schema
            proxy.mode = Mode.NOT_FOUND_PAGE
            failed_before = proxy.failed
            wait_for("retries while 404 pages answer", lambda: proxy.failed > failed_before, 40)
            # the proxy counts a failure before it answers: the worker counts it once the answer arrives
            misconfigured = 'stream_anon_registry_errors_total{kind="misconfigured"}'
            wait_for("the 404 counted", lambda: misconfigured in get(base + "/metrics")[1], 30)
            _, metrics = get(base + "/metrics")
            assert 'stream_anon_registry_errors_total{kind="unavailable"}' in metrics
            assert "stream_anon_registry_available 0.0" in metrics
            assert read_all(dlq, idle_s=1) == [], "nothing is dead-lettered for the registry's absence"
            assert proc.poll() is None

            proxy.mode = Mode.FORWARD
            wait_for("the held records sanitized", lambda: len(read_all(out, idle_s=1)) == 40, 90)
            wait_for("ready again", lambda: get(base + "/readyz")[0] == 200, 30)
            assert "stream_anon_registry_available 1.0" in get(base + "/metrics")[1]
    assert read_all(dlq) == []
    log = (tmp_path / "worker.log").read_text()
    assert "schema_registry_unavailable" in log and "schema_registry_available" in log


def test_the_registry_url_without_trailing_path_is_named_in_the_check(registry: str) -> None:
    """The check's message names the URL the operator wrote and what answered there."""
    from stream_anon.registry import RegistryClient, RegistryMisconfigured

    bare = registry.split("/apis/")[0]
    with pytest.raises(RegistryMisconfigured, match="answered HTTP 404") as raised:
        RegistryClient(bare).check()
    assert bare in str(raised.value)
    RegistryClient(registry).check()  # the right URL passes
    RegistryClient(registry + "/").check()
    assert registry == REGISTRY_URL
    assert client().get_subjects() is not None


def test_unknown_id_is_unknown_schema_through_the_real_registry(registry: str) -> None:
    from stream_anon.registry import RegistryClient, SchemaNotFound

    with pytest.raises(SchemaNotFound):
        RegistryClient(registry).schema_text(2_000_000_000)


def test_a_schema_the_real_registry_calls_invalid_is_a_rejection_with_its_answer(registry: str) -> None:
    # 422 takes the same path as 409 (the worker test above): the writer schema's records are
    # dead-lettered as derived_schema_rejected, never retried as an outage
    from stream_anon.registry import DerivedSchemaRejected, RegistryClient

    subject = unique("invalid") + "-value"
    invalid = {"type": "record", "name": "A", "fields": [{"name": "a", "type": "no.such.Type"}]}
    with pytest.raises(DerivedSchemaRejected) as caught:
        RegistryClient(registry).register(subject, invalid)
    assert caught.value.status == 422
    assert caught.value.subject == subject and caught.value.message
