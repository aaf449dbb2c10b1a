"""One benchmark case as its own OS process, driven by the harness over a pipe.

    python -m bench.proc --kind KIND --spec SPEC.json --events-fd FD

Kinds: ``passthrough`` (case 2), ``codec`` (case 7), ``keyed`` (case 8, a bound), ``stream-anon`` (cases 3,
4, 6), ``naive`` (case 5).
The process loads and warms up first (plan compiled, NLP model loaded), says ``ready``, then runs the
phases the harness sends on stdin, one JSON object per line:

* ``{"cmd": "run", "settings": {...}, "cap_s": 30, "idle_s": 2}``: consume until the input has been idle
  for ``idle_s`` after the first record, or ``cap_s`` after it, or a ``{"cmd": "stop"}``; answers with a
  ``result`` event: records, the measured window (first record consumed to last batch delivered), CPU
  seconds of the whole process (every thread) inside that window, and time per stage.
* ``{"cmd": "exit"}``: answers ``bye`` with the process's peak RSS and CPU, and exits.

Events go to a dedicated pipe (``--events-fd``), so nothing a library prints can garble them.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import queue
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from bench.data import load_values
from bench.measure import Events, Stopper, Window, rusage
from stream_anon.config import Settings
from stream_anon.crypto import HmacSha256
from stream_anon.health import Health
from stream_anon.logs import configure_logging
from stream_anon.metrics import Metrics
from stream_anon.pipeline import Pipeline
from stream_anon.records import DeadLetter, InputRecord, Outcome, Sanitized
from stream_anon.schemas import SchemaResolver
from stream_anon.service import WorkerObserver, output_key_function
from stream_anon.wire import decode_payload, encode, frame_header, parse_frame
from stream_anon.worker import Worker

KINDS = ("passthrough", "codec", "keyed", "stream-anon", "naive")


class RecordingObserver(WorkerObserver):
    """The worker's own observer (metrics and health, as in ``serve``), plus the benchmark's window."""

    def __init__(self) -> None:
        super().__init__(Metrics(), Health())
        self.window = Window()
        self.on_assigned: Callable[[int], None] = lambda n: None

    def consumed(self, records: list[InputRecord]) -> None:
        super().consumed(records)
        self.window.on_consumed(len(records))

    def delivered(self, outcomes: list[Outcome], output_topic: str, dlq_topic: str) -> None:
        super().delivered(outcomes, output_topic, dlq_topic)
        sanitized = sum(1 for o in outcomes if isinstance(o, Sanitized))
        if sanitized < len(outcomes):
            self.window.on_dead_letters([str(o.reason) for o in outcomes if isinstance(o, DeadLetter)])
        self.window.on_delivered(sanitized, len(outcomes) - sanitized)

    def stage(self, name: str, seconds: float) -> None:
        super().stage(name, seconds)
        self.window.stages[name] += seconds

    def assignment(self, partitions: int) -> None:
        super().assignment(partitions)
        self.window.assigned = partitions
        self.on_assigned(partitions)


# -- the pipelines of the reference cases ----------------------------------------------------------


class PassThrough:
    """Case 2: the bytes as they came, no decoding; the worker around it is stream-anon's own."""

    def __init__(self) -> None:
        self.stage_seconds: dict[str, float] = {}

    def process(self, batch: list[InputRecord]) -> list[Outcome]:
        return [Sanitized(rec, rec.value or b"", "raw") for rec in batch]


class CodecFloor:
    """Case 7: frame parsing, schema lookup, Avro decode and re-encode with the writer schema; no rules."""

    def __init__(self, resolver: SchemaResolver) -> None:
        self.resolver = resolver
        self.stage_seconds: dict[str, float] = {"decode": 0.0, "encode": 0.0}

    has_rules = False  # the floor applies none; KeyedFloor below applies its keyed calls

    def rules(self, record: dict[str, Any]) -> None:
        raise NotImplementedError

    def process(self, batch: list[InputRecord]) -> list[Outcome]:
        t0 = time.perf_counter()
        decoded = []
        for rec in batch:
            framing, ident, start = parse_frame(rec.value)
            writer = self.resolver.lookup(framing, ident)
            assert rec.value is not None
            decoded.append(
                (
                    writer,
                    frame_header(framing, ident),
                    decode_payload(rec.value, start, writer.parsed, writer.ref),
                )
            )
        t1 = time.perf_counter()
        self.stage_seconds["decode"] += t1 - t0
        if self.has_rules:
            for _, _, record in decoded:
                self.rules(record)
            t_rules = time.perf_counter()
            self.stage_seconds["transform"] = self.stage_seconds.get("transform", 0.0) + t_rules - t1
            t1 = t_rules
        out: list[Outcome] = [
            Sanitized(rec, encode(header, writer.parsed, record), writer.ref)
            for rec, (writer, header, record) in zip(batch, decoded, strict=True)
        ]
        self.stage_seconds["encode"] += time.perf_counter() - t1
        return out


class KeyedFloor(CodecFloor):
    """Case 8, a bound on case 3: the codec floor plus the keyed calls case 3's rules must make, nothing else.

    Case 3's schema asks for four keyed values a record: HMAC-SHA256 pseudonyms of ``user.user_id`` and
    ``user.email``, a date shift keyed by ``user.user_id`` (a third HMAC) and an AES-SIV token of
    ``device_id``; with ``output_key: hmac`` the worker adds a fourth HMAC, of the message key. This
    pipeline makes exactly those calls, with stream-anon's cheapest primitives, and writes their results
    back as hex so the record still fits the writer schema. It skips normalizing, prefixes, every other
    rule and the verifier, so no implementation of case 3 that decodes and encodes with fastavro and
    draws these keyed values per record can be faster than this case: its rate bounds case 3's.
    """

    has_rules = True

    def __init__(self, resolver: SchemaResolver) -> None:
        super().__init__(resolver)
        self._pseudonym = HmacSha256(os.urandom(32)).mac
        self._shift = HmacSha256(os.urandom(32)).mac
        self._siv = AESSIV(os.urandom(64))

    def rules(self, record: dict[str, Any]) -> None:
        user = record["user"]
        user_id = user["user_id"].encode()
        user["user_id"] = self._pseudonym(user_id).hex()
        if user["email"] is not None:
            user["email"] = self._pseudonym(user["email"].encode()).hex()
        days = int.from_bytes(self._shift(user_id)[:2], "big") % 30 - 15
        user["signup_date"] += (days + (days >= 0)) * 86_400_000  # never 0 days, as date_shift
        record["device_id"] = self._siv.encrypt(record["device_id"].encode(), None).hex()


# -- the phases --------------------------------------------------------------------------------------


class Case:
    def __init__(self, kind: str, spec: dict[str, Any], events: Events) -> None:
        self.kind = kind
        self.spec = spec
        self.events = events
        self.base: dict[str, Any] = spec["settings"]
        self.stopper: Stopper | None = None
        self.derived_schema: dict[str, Any] | None = None
        if kind == "naive":
            from bench.naive import NaivePeer

            self.naive = NaivePeer(spec)
        else:
            self.pipeline = self._pipeline(Settings(**self.base))

    def _pipeline(self, settings: Settings) -> Any:
        if self.kind == "passthrough":
            return PassThrough()
        if self.kind in ("codec", "keyed"):
            from stream_anon.schemas import open_resolver

            floor = CodecFloor if self.kind == "codec" else KeyedFloor
            return floor(open_resolver(settings))
        from stream_anon.app import build_pipeline

        return build_pipeline(settings)

    def warm_up(self, values: list[tuple[bytes, bytes]]) -> None:
        """Compile the plan, load the model, touch every code path once: not part of any measurement."""
        batch = [InputRecord("warm-up", 0, i, 0, k, v) for i, (k, v) in enumerate(values)]
        if self.kind == "naive":
            self.naive.warm_up([v for _, v in values])
            return
        outcomes = self.pipeline.process(batch)
        if isinstance(self.pipeline, Pipeline):
            framing, ident, _ = parse_frame(values[0][1])
            plan = self.pipeline.compiled(self.pipeline.resolver.lookup(framing, ident)).plan
            self.derived_schema = plan.derived_schema if plan is not None else None
            bad = [o for o in outcomes if not isinstance(o, Sanitized)]
            if bad:
                reasons = Counter(str(getattr(o, "reason", "?")) for o in bad)
                self.events.send(
                    "warning", message=f"warm-up dead-lettered {len(bad)} records: {dict(reasons)}"
                )

    def run(self, overrides: dict[str, Any], cap_s: float, idle_s: float) -> dict[str, Any]:
        settings = Settings(**{**self.base, **overrides})
        if self.kind == "naive":
            return self.naive.run(settings, cap_s, idle_s, self.events)
        observer = RecordingObserver()
        observer.on_assigned = lambda n: self.events.send("assigned", partitions=n)
        worker = Worker(
            settings, cast(Pipeline, self.pipeline), observer, output_key=output_key_function(settings)
        )
        self.stopper = Stopper(observer.window, worker.stop, cap_s, idle_s)
        try:
            worker.run()
        finally:
            self.stopper.close()
            self.stopper = None
        return observer.window.result()

    def stop(self) -> None:
        if self.kind == "naive":
            self.naive.stop()
        elif self.stopper is not None:
            self.stopper.told.set()


def _commands(q: queue.Queue[dict[str, Any]], case_ref: list[Case | None]) -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        if cmd.get("cmd") == "stop":
            case = case_ref[0]
            if case is not None:
                case.stop()
            continue
        q.put(cmd)
    q.put({"cmd": "exit"})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", choices=KINDS, required=True)
    parser.add_argument("--spec", type=Path, required=True)
    parser.add_argument("--events-fd", type=int, required=True)
    args = parser.parse_args()
    events = Events(io.TextIOWrapper(open(args.events_fd, "wb", closefd=True), encoding="utf-8"))  # noqa: SIM115
    spec = json.loads(args.spec.read_text(encoding="utf-8"))
    configure_logging("json", "info")
    started = time.perf_counter()
    case_ref: list[Case | None] = [None]
    commands: queue.Queue[dict[str, Any]] = queue.Queue()
    threading.Thread(target=_commands, args=(commands, case_ref), daemon=True).start()
    case = Case(args.kind, spec, events)
    case.warm_up(load_values(Path(spec["data_file"]), spec.get("warm_up", 200)))
    case_ref[0] = case
    events.send(
        "ready", startup_s=time.perf_counter() - started, derived_schema=case.derived_schema, process=rusage()
    )
    while True:
        cmd = commands.get()
        if cmd["cmd"] == "exit":
            break
        if cmd["cmd"] == "run":
            result = case.run(cmd.get("settings", {}), float(cmd["cap_s"]), float(cmd["idle_s"]))
            events.send("result", **result, process=rusage())
    events.send("bye", process=rusage())


if __name__ == "__main__":
    main()
