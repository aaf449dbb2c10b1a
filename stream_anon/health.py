"""``/metrics``, ``/healthz`` and ``/readyz`` on one port, served from a daemon thread.

* ``/healthz`` (liveness): 200 while the worker's loop turns; 503 once no iteration (``Health.beat``)
  happened within ``stall_timeout_s``, so Kubernetes restarts a wedged worker.
* ``/readyz`` (readiness): 200 when partitions are assigned, the broker is reachable, the schema registry
  (if any) answers, and the loop has turned within a quarter of ``stall_timeout_s`` (a loop blocked on
  the broker is not making progress).
* ``/metrics``: the ``Metrics`` registry in the Prometheus text format.

Bodies are one short line of plain text naming the reason; they never carry record data.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder


class Health:
    """What the probes report, set by the worker. Thread-safe: plain assignments of immutable values."""

    def __init__(self, stall_timeout_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        if stall_timeout_s <= 0:
            raise ValueError("stall_timeout_s must be positive")
        self.stall_timeout_s = stall_timeout_s
        # Readiness turns first, liveness (a restart) only if the stall lasts. A loop blocked inside
        # commit_transaction serves no client callbacks, so the broker's absence is not reported from
        # there: the stalled loop is what says it.
        self.ready_stall_s = stall_timeout_s / 4
        self._clock = clock
        # Starting counts as a beat: the worker gets one timeout to reach its loop.
        self._last_beat = clock()
        self._assigned = 0
        self._broker_up = False
        self._registry_available = True
        self._stopping = False

    def beat(self) -> None:
        """Called once per loop iteration."""
        self._last_beat = self._clock()

    def set_assignment(self, partitions: int) -> None:
        self._assigned = partitions

    def set_broker_up(self, up: bool) -> None:
        self._broker_up = up

    def set_registry_available(self, available: bool) -> None:
        """False while batches wait for the schema registry (unreachable, 5xx): alive, not ready."""
        self._registry_available = available

    def set_stopping(self) -> None:
        """Shutting down: not ready any more (the pod leaves its Service), still alive."""
        self._stopping = True

    def liveness(self) -> tuple[bool, str]:
        idle = self._clock() - self._last_beat
        if idle > self.stall_timeout_s:
            return False, f"no loop iteration for {idle:.0f} s (limit {self.stall_timeout_s:g} s)"
        return True, "ok"

    def readiness(self) -> tuple[bool, str]:
        if self._stopping:
            return False, "shutting down"
        if not self._broker_up:
            return False, "broker not reachable"
        if not self._registry_available:
            return False, "schema registry unavailable: records wait for it"
        idle = self._clock() - self._last_beat
        if idle > self.ready_stall_s:
            return False, f"no loop iteration for {idle:.0f} s: waiting on the broker?"
        if self._assigned <= 0:
            return False, "no partitions assigned"
        return True, f"ok, {self._assigned} partitions assigned"


class HealthServer:
    """The HTTP server for the probes and the metrics. ``port=0`` picks a free port (see ``port``)."""

    def __init__(
        self, health: Health, registry: CollectorRegistry, port: int = 9400, host: str = "0.0.0.0"
    ) -> None:
        self.health = health
        self.registry = registry
        self._server = ThreadingHTTPServer((host, port), _handler_for(health, registry))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.2},
                name="health-http",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; returns once the serving thread has ended."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> HealthServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _handler_for(health: Health, registry: CollectorRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "stream-anon"
        sys_version = ""

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._probe(*health.liveness())
            elif path == "/readyz":
                self._probe(*health.readiness())
            elif path == "/metrics":
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                self._send(200, encoder(registry), content_type)
            else:
                self._send(404, b"not found: try /metrics, /healthz or /readyz\n")

        def do_HEAD(self) -> None:
            self.do_GET()

        def _probe(self, ok: bool, reason: str) -> None:
            self._send(200 if ok else 503, (reason + "\n").encode())

        def _send(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            # Probes hit every few seconds; access lines would drown the worker's own logs.
            return

    return Handler
