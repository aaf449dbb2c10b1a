"""Ends the process when a batch's delivery hangs past every timeout it was given."""

from __future__ import annotations

import faulthandler
import os
import sys
import threading
import time
from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)


class Watchdog:
    """Ends the process if a batch's delivery outlives every timeout it was given.

    librdkafka can block in a transactional call past its own timeout after a broker outage. By then the
    broker has aborted the transaction, so exiting loses nothing: the restarted worker fences the old
    producer and processes the batch again. Without this, the worker would hang until a liveness probe.

    One thread watches for the worker's whole life, looking at the deadline every ``tick_s``; entering
    and leaving the context only set and clear that deadline: a timer thread per batch would cost a
    thread start per transaction (about 0.2 ms, and a GIL handover to the new thread) on the hot loop.
    """

    def __init__(
        self, limit_s: float, expire: Callable[[float], None] | None = None, tick_s: float = 1.0
    ) -> None:
        self.limit_s = limit_s
        self._expire = expire or _exit_hung
        self._tick_s = min(tick_s, limit_s)
        self._deadline: float | None = None
        self._closed = threading.Event()
        self._pid = -1

    def __enter__(self) -> Watchdog:
        if self._pid != os.getpid() or self._closed.is_set():  # first use, closed, or a forked child
            self._start()
        self._deadline = time.monotonic() + self.limit_s
        return self

    def __exit__(self, *exc: object) -> None:
        self._deadline = None

    def close(self) -> None:
        """Stop watching: the thread ends within ``tick_s`` (entering again starts another)."""
        self._closed.set()

    def _start(self) -> None:
        self._pid = os.getpid()
        self._closed = closed = threading.Event()
        threading.Thread(target=self._watch, args=(closed,), name="watchdog", daemon=True).start()

    def _watch(self, closed: threading.Event) -> None:
        while not closed.wait(self._tick_s):
            deadline = self._deadline
            if deadline is not None and time.monotonic() > deadline:
                closed.set()
                self._expire(self.limit_s)
                return


def _exit_hung(limit_s: float) -> None:
    log.error("delivery_hung", seconds=limit_s)
    print(f"error: a Kafka transaction did not complete within {limit_s:.0f}s; exiting", file=sys.stderr)
    # where it hung (code locations only, no values): the client call that never returned
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    os._exit(3)
