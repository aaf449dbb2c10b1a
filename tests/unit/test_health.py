"""The probe and metrics server, over real HTTP on a free port."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from stream_anon.health import Health, HealthServer
from stream_anon.metrics import Metrics


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def get(server: HealthServer, path: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def health(clock: FakeClock) -> Health:
    return Health(stall_timeout_s=30, clock=clock)


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def server(health: Health, metrics: Metrics) -> Iterator[HealthServer]:
    with HealthServer(health, metrics.registry, port=0, host="127.0.0.1") as running:
        yield running


def test_port_zero_binds_a_free_port(server: HealthServer) -> None:
    assert server.port > 0


def test_healthz_is_ok_while_the_loop_beats(server: HealthServer, health: Health, clock: FakeClock) -> None:
    assert get(server, "/healthz")[0] == 200
    clock.now += 25
    health.beat()
    clock.now += 25  # 50 s since start, 25 s since the last beat
    assert get(server, "/healthz")[:1] == (200,)


def test_healthz_fails_when_the_loop_is_wedged(server: HealthServer, clock: FakeClock) -> None:
    clock.now += 31
    status, content_type, body = get(server, "/healthz")
    assert status == 503
    assert content_type.startswith("text/plain")
    assert "no loop iteration for 31 s" in body


def test_readyz_needs_partitions_and_the_broker(server: HealthServer, health: Health) -> None:
    assert get(server, "/readyz")[0] == 503
    assert "broker not reachable" in get(server, "/readyz")[2]
    health.set_broker_up(True)
    assert get(server, "/readyz")[:3:2] == (503, "no partitions assigned\n")
    health.set_assignment(3)
    assert get(server, "/readyz")[:3:2] == (200, "ok, 3 partitions assigned\n")
    health.set_broker_up(False)
    assert get(server, "/readyz")[0] == 503
    health.set_broker_up(True)
    health.set_stopping()
    assert get(server, "/readyz")[:3:2] == (503, "shutting down\n")
    assert get(server, "/healthz")[0] == 200


def test_readyz_is_not_ready_while_records_wait_for_the_registry(
    server: HealthServer, health: Health
) -> None:
    health.set_broker_up(True)
    health.set_assignment(2)
    health.set_registry_available(False)
    assert get(server, "/readyz")[:3:2] == (503, "schema registry unavailable: records wait for it\n")
    assert get(server, "/healthz")[0] == 200, "waiting for the registry is not a stall"
    health.set_registry_available(True)
    assert get(server, "/readyz")[0] == 200


def test_readyz_fails_first_when_the_loop_stalls_and_recovers_with_it(
    server: HealthServer, health: Health, clock: FakeClock
) -> None:
    # A loop blocked in a transaction commit reports nothing about the broker: the stall itself says it.
    health.set_broker_up(True)
    health.set_assignment(3)
    assert get(server, "/readyz")[0] == 200
    clock.now += 8  # past a quarter of the 30 s stall timeout, short of the timeout itself
    status, _, body = get(server, "/readyz")
    assert (status, get(server, "/healthz")[0]) == (503, 200)
    assert "no loop iteration for 8 s" in body
    health.beat()
    assert get(server, "/readyz")[0] == 200


def test_metrics_serves_the_registry(server: HealthServer, metrics: Metrics) -> None:
    metrics.consumed("feedback.raw", 42)
    status, content_type, body = get(server, "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4")
    assert 'stream_anon_records_consumed_total{topic="feedback.raw"} 42.0' in body


def test_unknown_paths_are_404(server: HealthServer) -> None:
    assert get(server, "/")[0] == 404
    assert get(server, "/metrics/../secret")[0] == 404


def test_stop_closes_the_port(health: Health, metrics: Metrics) -> None:
    server = HealthServer(health, metrics.registry, port=0, host="127.0.0.1").start()
    port = server.port
    assert get(server, "/healthz")[0] == 200
    server.stop()
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port))


def test_a_non_positive_stall_timeout_is_refused() -> None:
    with pytest.raises(ValueError, match="stall_timeout_s"):
        Health(stall_timeout_s=0)
