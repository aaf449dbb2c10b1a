"""Noise samples drawn ahead, a vector at a time, on a background thread; each is handed out once.

OpenDP's sampler costs about 10-20 us a value even in vectors, and its call releases the GIL (ctypes),
so drawing on another thread takes that cost off the record path wherever a core is free. The thread
starts on the first ``take`` (compiling a plan starts nothing).

A forked child must never hand out its parent's samples: the parent hands out the same ones, so two
processes would publish values with identical noise, and the difference of their outputs would cancel
it. Every source is reset in the child right after ``fork`` (``os.register_at_fork``), whatever is left
in its vectors, and starts its own thread on its next ``take``.
"""

from __future__ import annotations

import os
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any

_SOURCES: weakref.WeakSet[NoiseSource] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for source in list(_SOURCES):
        source.forget()


os.register_at_fork(after_in_child=_reset_after_fork)


class NoiseSource:
    """Independent samples from ``draw`` (one vector a call), handed out one per ``take``."""

    AHEAD = 2  # vectors kept ready

    def __init__(self, draw: Callable[[], list[Any]]) -> None:
        self._draw = draw
        self._current: list[Any] = []
        self._ready: queue.Queue[list[Any] | BaseException] = queue.Queue(self.AHEAD)
        self._pid = -1
        _SOURCES.add(self)

    def take(self) -> Any:
        if not self._current:
            self._current = self._next()
        return self._current.pop()

    def forget(self) -> None:
        """Drop every sample drawn so far (they may have been handed out elsewhere): after a fork."""
        self._current = []
        # a new queue: the old one may hold the parent's vectors, and its lock may be held by a thread
        # that does not exist in this process
        self._ready = queue.Queue(self.AHEAD)
        self._pid = -1

    def _next(self) -> list[Any]:
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._ready = queue.Queue(self.AHEAD)
            threading.Thread(target=self._fill, args=(self._ready,), name="noise", daemon=True).start()
        item = self._ready.get()
        if isinstance(item, BaseException):
            self._pid = -1  # the thread has ended: the next take starts another
            raise RuntimeError("the noise sampler failed") from item
        return item

    def _fill(self, ready: queue.Queue[list[Any] | BaseException]) -> None:
        while True:
            try:
                vector = self._draw()
            except BaseException as exc:  # handed to the record path, which fails loudly
                ready.put(exc)
                return
            ready.put(vector)
