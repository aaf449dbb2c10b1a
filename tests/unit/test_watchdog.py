"""The delivery watchdog: one thread for a worker's life, firing only for a delivery past its limit."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from stream_anon.kafka.watchdog import Watchdog


def watchdog_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "watchdog"]


def wait_until(condition: Callable[[], object], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_a_delivery_past_its_limit_fires_once_with_the_limit() -> None:
    fired: list[float] = []
    watchdog = Watchdog(0.2, fired.append, tick_s=0.02)
    with watchdog:
        assert wait_until(lambda: fired)
    time.sleep(0.1)
    assert fired == [0.2]
    watchdog.close()


def test_deliveries_within_their_limit_never_fire_and_share_one_thread() -> None:
    fired: list[float] = []
    before = len(watchdog_threads())
    watchdog = Watchdog(0.3, fired.append, tick_s=0.02)
    for _ in range(200):
        with watchdog:
            pass
    assert len(watchdog_threads()) == before + 1
    with watchdog:
        time.sleep(0.15)  # half the limit, then done
    time.sleep(0.5)  # well past where a deadline left armed would have fired
    assert fired == []
    watchdog.close()
    assert wait_until(lambda: len(watchdog_threads()) == before)


def test_a_closed_watchdog_starts_watching_again_when_entered() -> None:
    fired: list[float] = []
    watchdog = Watchdog(0.1, fired.append, tick_s=0.02)
    with watchdog:
        pass
    watchdog.close()
    with watchdog:
        assert wait_until(lambda: fired)
    assert fired == [0.1]
    watchdog.close()
