"""``serve``: the worker process — logging, the metrics and health server, the pipeline, the loop."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Callable

import structlog

from stream_anon.app import build_pipeline, dead_letter_sealing, load_keys
from stream_anon.config import ConfigError, Settings
from stream_anon.crypto import pseudonym_function, pseudonym_prefix
from stream_anon.detection import ScannerUnavailable
from stream_anon.health import Health, HealthServer
from stream_anon.kafka.errors import FatalKafkaError, Fenced
from stream_anon.keys import Keys, KeysError
from stream_anon.logs import configure_logging
from stream_anon.metrics import Metrics
from stream_anon.pipeline import CompiledSchema
from stream_anon.records import DeadLetter, InputRecord, Outcome, Sanitized
from stream_anon.registry import DerivedSchemaRejected, RegistryError
from stream_anon.worker import Worker

log = structlog.get_logger(__name__)


class WorkerObserver:
    """Feeds the worker's progress to the Prometheus metrics and the health probes."""

    def __init__(self, metrics: Metrics, health: Health) -> None:
        self.metrics = metrics
        self.health = health

    def consumed(self, records: list[InputRecord]) -> None:
        self.metrics.batch_size(len(records))
        by_topic: dict[str, int] = {}
        for r in records:
            by_topic[r.topic] = by_topic.get(r.topic, 0) + 1
        for topic, n in by_topic.items():
            self.metrics.consumed(topic, n)

    def delivered(self, outcomes: list[Outcome], output_topic: str, dlq_topic: str) -> None:
        sanitized = 0
        for o in outcomes:
            if isinstance(o, Sanitized):
                sanitized += 1
            else:
                self._dead_letter(o)
        if sanitized:
            self.metrics.produced(output_topic, sanitized)
        self.metrics.end_to_end_lags(o.source.timestamp_ms for o in outcomes)

    def _dead_letter(self, dl: DeadLetter) -> None:
        self.metrics.dead_lettered(dl.source.topic, dl.reason)

    def leak(self, entity: str, path: str) -> None:
        self.metrics.leak(entity, path)

    def scanned(self, entity: str, n: int) -> None:
        self.metrics.scan_entities(entity, n)

    def stage(self, name: str, seconds: float) -> None:
        self.metrics.observe_stage(name, seconds)

    def transaction(self, committed: bool) -> None:
        self.metrics.transaction(committed)

    def loop(self) -> None:
        self.health.beat()

    def assignment(self, partitions: int) -> None:
        self.health.set_broker_up(True)  # an assignment comes from the group coordinator: it is reachable
        self.metrics.assigned_partitions(partitions)
        self.health.set_assignment(partitions)

    def broker(self, up: bool) -> None:
        self.health.set_broker_up(up)

    def stats(self, stats_json: str) -> None:
        self.metrics.on_stats(stats_json)
        self.broker_stats(stats_json)

    def broker_stats(self, stats_json: str) -> None:
        # librdkafka's statistics say whether any broker connection is up: readiness recovers from them
        # even when the topic is idle after a broker outage
        try:
            brokers = json.loads(stats_json).get("brokers", {})
        except ValueError:
            return
        real = [b for b in brokers.values() if b.get("nodeid", -1) >= 0]
        if real:
            self.health.set_broker_up(any(b.get("state") == "UP" for b in real))

    def compiled(self, entry: CompiledSchema) -> None:
        self.metrics.plan_compiled()

    def registry(self, error: RegistryError | None) -> None:
        if error is not None:
            self.metrics.registry_error(error.kind)
        self.metrics.registry_available(error is None)
        self.health.set_registry_available(error is None)

    def derived_schema_rejected(self, exc: DerivedSchemaRejected) -> None:
        self.metrics.registry_error(exc.kind)

    def committed(self, offsets: dict[tuple[str, int], int]) -> None:
        self.metrics.committed(offsets)


OUTPUT_KEY_PURPOSE = "output_key"
# k2: the HMAC is under a derived subkey; k1 (up to 0.1.0) keyed it with the raw secret.
OUTPUT_KEY_SCHEME = "k2"


def output_key_function(
    settings: Settings, keys: Keys | None = None
) -> Callable[[bytes | None], bytes | None]:
    """The sanitized record's key: a keyed pseudonym of the raw key by default, since keys often hold ids.

    ``keys``: the keys already loaded from ``settings.keys_file``, if the caller has them."""
    if settings.output_key == "keep":
        return lambda key: key
    if settings.output_key == "drop":
        return lambda key: None
    keys = keys if keys is not None else load_keys(settings.keys_file)
    try:
        version, _ = keys.active("default")
    except KeyError:
        raise ConfigError(
            "output_key: hmac needs a key named 'default' in keys_file; "
            "otherwise set output_key to keep or drop"
        ) from None
    # A subkey of its own, as every rule has (docs/configuration.md, output_key).
    subkey = keys.derive("default", version, OUTPUT_KEY_PURPOSE)
    pseudonym = pseudonym_function(subkey, pseudonym_prefix("default", version, OUTPUT_KEY_SCHEME))

    def output_key(key: bytes | None) -> bytes | None:
        return None if key is None else pseudonym(key).encode()

    return output_key


def _shutdown_timed_out(limit_s: float) -> None:
    log.error("shutdown_timed_out", seconds=limit_s)
    print(
        f"error: clean shutdown did not finish within {limit_s:.0f}s; the batch in flight will be "
        "processed again after a restart",
        file=sys.stderr,
    )
    os._exit(3)


def serve(settings: Settings, until_idle_s: float | None = None) -> int:
    """Run the worker until SIGTERM/SIGINT (or idle); returns the process exit code."""
    configure_logging(settings.log_format, settings.log_level)
    metrics = Metrics()
    health = Health(stall_timeout_s=settings.stall_timeout_s)
    observer = WorkerObserver(metrics, health)
    server = (
        HealthServer(health, metrics.registry, port=settings.metrics_port) if settings.metrics_port else None
    )
    try:
        if server is not None:
            server.start()
        keys = load_keys(settings.keys_file)  # once: the rules, the output key and the seal share them
        pipeline = build_pipeline(
            settings,
            on_compiled=observer.compiled,
            on_leak=observer.leak,
            on_scan=observer.scanned,
            on_rejected=observer.derived_schema_rejected,
            keys=keys,
        )
        sealing = dead_letter_sealing(settings, keys)
        worker = Worker(
            settings,
            pipeline,
            observer,
            output_key=output_key_function(settings, keys),
            seal_dead_letter=None if sealing is None else sealing.seal,
        )

        def stop(*_: object) -> None:
            health.set_stopping()  # not ready from now on: Kubernetes stops routing to a leaving pod
            worker.stop()
            # bound the shutdown: with the broker gone, the batch in flight can neither commit nor abort;
            # leaving it is safe (the broker aborts it, a restart processes it again)
            timer = threading.Timer(
                settings.shutdown_timeout_s, _shutdown_timed_out, args=(settings.shutdown_timeout_s,)
            )
            timer.daemon = True
            timer.start()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        worker.run(until_idle_s=until_idle_s)
    except Fenced as exc:
        # Not a configuration error: a restart (a new producer) processes the batch again. Exit 3 is the
        # code the watchdog uses for the same remedy.
        log.error("worker_fenced", error=str(exc))
        print(
            f"error: {exc}\nThis worker's producer was fenced: a newer instance took its transactional id, "
            "or the broker ended its transaction (a timeout or a coordinator failover). Nothing of the "
            "batch is visible; a restart processes it again. If this repeats, two workers share the "
            "transactional id.",
            file=sys.stderr,
        )
        return 3
    except (
        ConfigError,
        FatalKafkaError,
        RegistryError,
        ScannerUnavailable,
        KeysError,
        FileNotFoundError,
        PermissionError,
    ) as exc:
        log.error("worker_failed", error=str(exc))
        # the operator's message, unscrubbed: it is built from the configuration, never from records
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if server is not None:
            server.stop()
    return 0
