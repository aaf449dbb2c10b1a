"""What every case process measures: its window of work, and how it stops and reports."""

from __future__ import annotations

import json
import resource
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import IO, Any


class Events:
    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, event: str, **fields: Any) -> None:
        with self._lock:
            self._stream.write(json.dumps({"event": event, **fields}) + "\n")
            self._stream.flush()


class Window:
    """First record consumed to last batch delivered, in wall and process-CPU seconds."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.first_cpu = 0.0
        self.last = 0.0
        self.last_cpu = 0.0
        self.activity = 0.0
        self.busy = False  # between a batch consumed and its delivery: not idle, however long it takes
        self.consumed = 0
        self.sanitized = 0
        self.dead_lettered = 0
        self.stages: defaultdict[str, float] = defaultdict(float)
        self.dead_letter_reasons: defaultdict[str, int] = defaultdict(int)
        self.assigned = 0

    def on_consumed(self, n: int) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first, self.first_cpu = now, time.process_time()
        self.consumed += n
        self.activity = now
        self.busy = True

    def on_dead_letters(self, reasons: list[str]) -> None:
        for reason in reasons:
            self.dead_letter_reasons[reason] += 1

    def on_delivered(self, sanitized: int, dead_lettered: int) -> None:
        self.sanitized += sanitized
        self.dead_lettered += dead_lettered
        self.last, self.last_cpu = time.perf_counter(), time.process_time()
        self.activity = self.last
        self.busy = False

    def result(self) -> dict[str, Any]:
        seconds = (self.last - self.first) if self.first is not None else 0.0
        return {
            "records": self.sanitized + self.dead_lettered,
            "sanitized": self.sanitized,
            "dead_lettered": self.dead_lettered,
            "consumed": self.consumed,
            "seconds": seconds,
            "cpu_seconds": self.last_cpu - self.first_cpu if self.first is not None else 0.0,
            "first_unix": time.time() - (time.perf_counter() - self.first)
            if self.first is not None
            else None,
            "last_unix": time.time() - (time.perf_counter() - self.last) if self.first is not None else None,
            "stages": dict(self.stages),
            "dead_letter_reasons": dict(self.dead_letter_reasons),
        }


class Stopper:
    """Stops a phase when its input has gone idle, when it has run long enough, or when told to."""

    def __init__(self, window: Window, stop: Callable[[], None], cap_s: float, idle_s: float) -> None:
        self.window, self.stop, self.cap_s, self.idle_s = window, stop, cap_s, idle_s
        self.told = threading.Event()
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self.done.wait(0.05):
            w = self.window
            now = time.perf_counter()
            if self.told.is_set() or (
                w.first is not None
                and ((not w.busy and now - w.activity > self.idle_s) or now - w.first > self.cap_s)
            ):
                self.stop()
                return

    def close(self) -> None:
        self.done.set()
        self._thread.join()


def peak_rss_mb(pid: int | str = "self") -> float | None:
    """The kernel's high-water mark of resident memory (VmHWM) of this process's current image.

    Not ``ru_maxrss``: Linux carries the forking parent's peak across ``exec`` into it, so every child
    of a big harness would report at least the harness's size.
    """
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def rusage() -> dict[str, float | None]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"max_rss_mb": peak_rss_mb(), "cpu_seconds": usage.ru_utime + usage.ru_stime}
