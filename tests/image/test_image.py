"""The container image, run as the Helm chart runs it, against the real broker.

The image is built by scripts/build-image.sh (incremental: cached layers are reused) unless
STREAM_ANON_IMAGE names one already built (CI builds it in its own step). The chart is rendered with
helm (built by scripts/check-deploy.sh into .cache/bin) with this test's broker, topics, metrics port and
keys file, and its Deployment and audit CronJob pods are run with podman by chartpod.py: the chart's
security context, its config, schemas and keys mounted read-only at its paths, the host network.

Skipped only where podman cannot run at all (not installed, or not root); CI installs it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chartpod import Pod, podman, render_chart
from helmtools import HELM, REPO
from kafkatools import BOOTSTRAP, create_topics, delete_topics, read_all, unique
from prometheus_client.parser import text_string_to_metric_families

from stream_anon.datagen import generate_feedback
from stream_anon.demo import malformed_records
from stream_anon.records import HEADER_PREFIX, SEAL_HEADER

pytestmark = pytest.mark.broker

COUNT = 200  # generated feedback records; the demo producer adds its malformed ones
MALFORMED = len(malformed_records())
UID = 10001


@pytest.fixture(scope="module")
def image() -> str:
    if shutil.which("podman") is None or shutil.which("buildah") is None:
        pytest.skip("podman/buildah are not installed (apt-get install buildah podman; CI installs them)")
    if os.geteuid() != 0:
        pytest.skip("the image tests run rootful podman: run them as root (CI does)")
    name = os.environ.get("STREAM_ANON_IMAGE")
    if not name:
        version = yaml.safe_load((REPO / "helm" / "stream-anon" / "Chart.yaml").read_text())["appVersion"]
        name = f"localhost/stream-anon:{version}"
        build = subprocess.run(
            ["bash", "scripts/build-image.sh"],
            cwd=REPO,
            env={**os.environ, "SBOM": "0", "IMAGE": name},
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        assert build.returncode == 0, (
            f"scripts/build-image.sh failed:\n{build.stdout[-3000:]}{build.stderr[-3000:]}"
        )
    podman("image", "exists", name)
    if not HELM.exists():
        pytest.fail(f"{HELM} is missing: scripts/check-deploy.sh builds it (CI runs that first)")
    return name


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:  # not listening (yet)
        return 0, str(exc)


def metric_sums(port: int) -> dict[str, float]:
    """Each stream_anon_* counter and gauge summed over its labels."""
    _, text = http_get(f"http://127.0.0.1:{port}/metrics")
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("stream_anon_") and not sample.name.endswith("_created"):
                sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
    return sums


class Release:
    """The chart rendered for this test, its worker pod running, the demo records produced and processed."""

    def __init__(self, image: str, workdir: Path) -> None:
        self.image = image
        self.run_id = uuid.uuid4().hex[:8]
        self.raw, self.sanitized, self.dlq = (unique(f"image.{t}") for t in ("raw", "sanitized", "dlq"))
        self.port = free_port()
        keys = workdir / "keys.json"
        # As the chart's README says: with the dead-letter key config.dlq_encryption_required asks for.
        subprocess.run(
            [
                sys.executable,
                "-m",
                "stream_anon",
                "keys",
                "generate",
                "--output",
                str(keys),
                "--dlq-key",
                "dlq",
            ],
            check=True,
            capture_output=True,
        )
        values = {
            "image": {
                "repository": image.rsplit(":", 1)[0],
                "tag": image.rsplit(":", 1)[1],
                "pullPolicy": "Never",
            },
            "config": {
                "bootstrap_servers": BOOTSTRAP,
                "group_id": f"image-test-{self.run_id}",
                "input_topics": [self.raw],
                "output_topic": self.sanitized,
                "dlq_topic": self.dlq,
                "metrics_port": self.port,
                "log_format": "json",
            },
            # The fields the example schema turns into pseudonym tokens or IP prefixes: NER reads tokens
            # as names and a prefix is an IP address, so the audit is told to skip them, as values.yaml says.
            "audit": {
                "enabled": True,
                "maxRecords": COUNT,
                "format": "json",
                "ignorePaths": ["feedback_id", "user.user_id", "user.email", "device_id", "ip_address"],
            },
        }
        (workdir / "values.yaml").write_text(yaml.safe_dump(values))
        self.manifests = render_chart(workdir / "values.yaml", f"keys.content={keys}")
        self.worker = Pod.from_manifests(self.manifests, "Deployment", workdir, f"stream-anon-{self.run_id}")
        self.pods = [self.worker]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def produce(self) -> None:
        """`stream-anon demo produce` in the image, with the worker container's security context."""
        producer = {
            **self.worker.container("worker"),
            "name": "producer",
            "args": ["demo", "produce", "--topic", self.raw, "--count", str(COUNT)],
            "env": [{"name": "STREAM_ANON_BOOTSTRAP_SERVERS", "value": BOOTSTRAP}],
        }
        result = self.worker.run(producer, self.image)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"produced {COUNT + MALFORMED} records" in result.stdout

    def wait_for(self, what: str, condition: Any, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return
            state = podman("inspect", "--format", "{{.State.Status}}", f"{self.worker.name}-worker").stdout
            if state.strip() != "running":
                break
            time.sleep(1)
        raise AssertionError(
            f"{what} within {timeout_s} s; worker log:\n{self.worker.logs('worker')[-4000:]}"
        )

    def close(self) -> None:
        for pod in self.pods:
            pod.remove()
        delete_topics([self.raw, self.sanitized, self.dlq])


@pytest.fixture(scope="module")
def release(image: str, tmp_path_factory: pytest.TempPathFactory, broker: str) -> Iterator[Release]:
    workdir = tmp_path_factory.mktemp("chart")
    workdir.chmod(0o755)  # the containers' users read the volumes below it
    r = Release(image, workdir)
    create_topics([r.raw, r.sanitized, r.dlq], partitions=3)
    try:
        r.worker.run_init_containers(image)
        r.worker.start(r.worker.container("worker"), image)
        r.wait_for("/readyz answered 200", lambda: http_get(r.url("/readyz"))[0] == 200, 180)
        r.produce()
        # written, not only consumed: the produced and dead-lettered counters move when a batch commits

        def written() -> float:
            counts = metric_sums(r.port)
            return counts.get("stream_anon_records_produced_total", 0) + counts.get(
                "stream_anon_records_dead_lettered_total", 0
            )

        r.wait_for(
            f"the worker wrote {COUNT + MALFORMED} records", lambda: written() >= COUNT + MALFORMED, 180
        )
        yield r
    finally:
        r.close()


def test_worker_runs_with_the_charts_security_context(release: Release) -> None:
    name = f"{release.worker.name}-worker"
    assert podman("exec", name, "id", "-u").stdout.strip() == str(UID)
    assert str(UID) in podman("exec", name, "id", "-G").stdout.split()  # fsGroup
    status = podman("exec", name, "cat", "/proc/1/status").stdout
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert fields["CapEff"].strip() == "0000000000000000"
    assert fields["CapBnd"].strip() == "0000000000000000"
    assert fields["NoNewPrivs"].strip() == "1"
    assert fields["Uid"].split()[0] == str(UID)
    # The root filesystem and the mounted configuration are read-only; /tmp (the emptyDir) is writable.
    for path in ("/opt/venv/x", "/etc/stream-anon/x", "/etc/stream-anon/keys/x", "/x"):
        denied = podman("exec", name, "touch", path, check=False)
        assert denied.returncode != 0 and "Read-only file system" in denied.stderr, path
    assert podman("exec", name, "touch", "/tmp/x").returncode == 0
    # The init container copied the keys file with mode 0600 for the worker's user.
    assert podman("exec", name, "stat", "-c", "%a %u", "/etc/stream-anon/keys/keys.json").stdout.split() == [
        "600",
        str(UID),
    ]


def test_image_defaults_match_the_chart(release: Release) -> None:
    """The chart passes only args (the image's ENTRYPOINT runs them) and expects the image's own user."""
    config = json.loads(podman("image", "inspect", "--format", "{{json .Config}}", release.image).stdout)
    security = {**release.worker.security, **release.worker.container("worker")["securityContext"]}
    assert config["User"] == f"{security['runAsUser']}:{security['runAsGroup']}"
    assert config["Entrypoint"] == ["stream-anon"]
    assert "command" not in release.worker.container("worker")
    assert config["Cmd"] == release.worker.container("worker")["args"]


def test_ready_with_partitions_assigned(release: Release) -> None:
    status, body = http_get(release.url("/readyz"))
    assert status == 200
    assert "3 partitions assigned" in body
    assert metric_sums(release.port)["stream_anon_assigned_partitions"] == 3


def test_the_charts_probes_answer(release: Release) -> None:
    worker = release.worker.container("worker")
    ports = {p["name"]: p["containerPort"] for p in worker["ports"]}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = worker[probe]["httpGet"]
        port = ports.get(get["port"], get["port"])
        status, body = http_get(f"http://127.0.0.1:{port}{get['path']}")
        assert status == 200, (probe, body)


def test_records_sanitized_and_dead_lettered(release: Release) -> None:
    counts = metric_sums(release.port)
    assert counts["stream_anon_records_consumed_total"] == COUNT + MALFORMED
    assert counts["stream_anon_records_produced_total"] == COUNT
    assert counts["stream_anon_records_dead_lettered_total"] == MALFORMED
    sanitized = read_all(release.sanitized)
    dead = read_all(release.dlq)
    assert len(sanitized) == COUNT
    assert len(dead) == MALFORMED
    # Each malformed record dead-lettered from the raw topic with its reason, sealed with the dead-letter
    # key (the chart's default): its raw value is not readable on the dead-letter topic.
    assert all(r.headers[f"{HEADER_PREFIX}source.topic"] == release.raw for r in dead)
    assert len({r.headers[f"{HEADER_PREFIX}reason"] for r in dead}) == MALFORMED
    assert all(SEAL_HEADER in r.headers for r in dead)
    raw_values = [value for _, value in malformed_records() if value]
    assert not [v for v in raw_values for r in dead if r.value and v in r.value]
    # No generated email address or phone number reached the sanitized topic.
    records = generate_feedback(COUNT, seed=7)
    needles = {r["user"][f].encode() for r in records for f in ("email", "phone") if r["user"][f]}
    assert len(needles) > COUNT
    leaked = [n for n in needles for r in sanitized if r.value and n in r.value]
    assert not leaked


def test_audit_cronjob_runs_its_command(release: Release, tmp_path: Path) -> None:
    audit = Pod.from_manifests(release.manifests, "CronJob", tmp_path, f"stream-anon-audit-{release.run_id}")
    release.pods.append(audit)
    audit.run_init_containers(release.image)
    result = audit.run(audit.container("audit"), release.image, timeout=600)
    assert result.returncode == 0, result.stdout[:4000] + result.stderr[-1000:]
    report = json.loads(result.stdout)
    assert report["decoded"] == COUNT
    assert report["passed"] is True


def test_sigterm_stops_the_worker_cleanly_within_the_grace_period(release: Release) -> None:
    code, seconds = release.worker.stop("worker")
    logs = release.worker.logs("worker")
    assert code == 0, logs[-4000:]
    assert seconds < release.worker.grace_period_s
    assert "Traceback" not in logs
