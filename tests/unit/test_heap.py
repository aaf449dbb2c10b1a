"""The collector settings a worker applies at start (stream_anon/heap.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from stream_anon import heap


@pytest.fixture(autouse=True)
def restore_collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_settle_moves_the_live_heap_out_of_the_collectors_generations() -> None:
    gc.unfreeze()
    kept = [{"long": "lived"} for _ in range(1000)]
    heap.settle()
    assert gc.get_freeze_count() >= len(kept)
    assert not any(obj is kept for obj in gc.get_objects())


def test_settle_collects_garbage_before_freezing_it() -> None:
    # a frozen cycle would never be collected: settle must collect first
    import weakref

    class Node:
        other: object

    node = Node()
    node.other = node
    ref = weakref.ref(node)
    del node
    gc.disable()  # so that only settle can collect the cycle
    try:
        heap.settle()
    finally:
        gc.enable()
    assert ref() is None


def test_frozen_objects_are_still_freed_by_reference_counting() -> None:
    import weakref

    class Box:
        pass

    box = Box()
    ref = weakref.ref(box)
    heap.settle()
    del box
    assert ref() is None


def test_young_collections_are_made_rarer_and_older_generations_kept() -> None:
    gc.set_threshold(700, 10, 10)
    heap.tune_collector()
    assert gc.get_threshold() == (heap.YOUNG_THRESHOLD, 10, 10)


def test_a_higher_threshold_set_on_purpose_is_kept() -> None:
    gc.set_threshold(100_000, 5, 5)
    heap.tune_collector()
    assert gc.get_threshold() == (100_000, 5, 5)


def test_a_switched_off_collector_stays_off() -> None:
    gc.set_threshold(0, 10, 10)
    heap.tune_collector()
    assert gc.get_threshold()[0] == 0
