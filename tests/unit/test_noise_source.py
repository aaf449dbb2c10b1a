"""The noise source hands out each drawn sample exactly once, in order of vectors, and fails loudly."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import pytest

from stream_anon.dp import NoiseSource


def counting_draw(size: int) -> tuple[Any, list[int]]:
    counter = itertools.count()
    calls: list[int] = []

    def draw() -> list[int]:
        calls.append(1)
        return [next(counter) for _ in range(size)]

    return draw, calls


def test_every_sample_is_handed_out_once_across_vectors() -> None:
    draw, _ = counting_draw(7)
    source = NoiseSource(draw)
    taken = [source.take() for _ in range(100)]
    assert len(set(taken)) == 100, "no sample is reused"
    assert set(taken) <= set(range(7 * (100 // 7 + 1 + NoiseSource.AHEAD + 1)))


def test_vectors_are_drawn_on_another_thread_and_only_when_needed() -> None:
    threads: list[str] = []

    def draw() -> list[float]:
        threads.append(threading.current_thread().name)
        return [0.5] * 4

    source = NoiseSource(draw)
    assert threads == [], "building a source draws nothing"
    assert source.take() == 0.5
    assert threads and all(name == "noise" for name in threads)
    assert threading.current_thread().name not in threads


def test_a_failing_sampler_fails_the_take_and_the_next_take_tries_again() -> None:
    attempts: list[int] = []

    def draw() -> list[float]:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("sampler broke")
        return [1.0]

    source = NoiseSource(draw)
    with pytest.raises(RuntimeError, match="noise sampler failed"):
        source.take()
    assert source.take() == 1.0
