"""Candidate speed-ups, applied by monkeypatching inside a benchmark process only.

Each one is a change proposed for ``stream_anon/`` (its docstring names the file and function);
measuring it here first says whether it is worth making. ``bench/hotspots.py`` runs the pipeline with
and without them, and ``bench/run.sh --patch NAME`` runs the Kafka cases with them. A patch is applied
before the plan is compiled, since operations build their per-value functions at compile time.

The candidates measured so far (keyed HMAC, IP prefixes through ``inet_pton``, direct getters for PII
values, no per-leaf wrapper, polling without waiting for a full batch, then a frozen heap with rarer
young collections, a hand-keyed HMAC, whole-byte IPv4 prefixes) are applied in ``stream_anon/`` now;
bench/README.md has what each one measured. ``untuned-heap`` and ``timer-per-batch`` take one back out, to
measure it again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

Undo = Callable[[], None]


def lag_per_batch() -> Undo:
    """metrics.py ``Metrics.end_to_end_lags``: one ``Histogram.observe`` per batch (its oldest record,
    what an alert on lag wants) instead of one per record (about 1.8 us each). It changes what the
    histogram counts, so it is not applied: measured here, it is 1-2% of case 3's loop."""
    from stream_anon import metrics

    original = metrics.Metrics.end_to_end_lags

    def oldest_only(self: Any, timestamps_ms: Iterable[int], now: float | None = None) -> None:
        stamps = [t for t in timestamps_ms if t > 0]
        if stamps:
            original(self, [min(stamps)], now)

    metrics.Metrics.end_to_end_lags = oldest_only  # type: ignore[method-assign]
    return lambda: setattr(metrics.Metrics, "end_to_end_lags", original)


def untuned_heap() -> Undo:
    """The reverse of a change that is applied: heap.py's settings become no-ops, so that the collector
    runs as CPython sets it (young collections every 700 allocations, the whole heap rescanned)."""
    from stream_anon import heap

    settle, tune = heap.settle, heap.tune_collector
    heap.settle = heap.tune_collector = lambda: None

    def restore() -> None:
        heap.settle, heap.tune_collector = settle, tune

    return restore


def timer_per_batch() -> Undo:
    """The reverse of a change that is applied: worker.py's ``Watchdog`` starts a ``threading.Timer``
    for each transaction and cancels it after, as it did before it kept one thread for life."""
    import threading

    from stream_anon import worker

    enter, leave = worker.Watchdog.__enter__, worker.Watchdog.__exit__

    def start_timer(self: Any) -> Any:
        self.timer = threading.Timer(self.limit_s, self._expire, args=(self.limit_s,))
        self.timer.daemon = True
        self.timer.start()
        return self

    def cancel_timer(self: Any, *exc: object) -> None:
        self.timer.cancel()

    worker.Watchdog.__enter__ = start_timer  # type: ignore[method-assign]
    worker.Watchdog.__exit__ = cancel_timer  # type: ignore[method-assign]

    def restore() -> None:
        worker.Watchdog.__enter__, worker.Watchdog.__exit__ = enter, leave  # type: ignore[method-assign]

    return restore


PATCHES: dict[str, Callable[[], Undo]] = {
    "lag-per-batch": lag_per_batch,
    "untuned-heap": untuned_heap,
    "timer-per-batch": timer_per_batch,
}


def apply(names: list[str]) -> list[Undo]:
    for name in names:
        if name not in PATCHES:
            raise SystemExit(f"unknown patch {name!r}; known: {', '.join(PATCHES)}")
    return [PATCHES[name]() for name in names]
