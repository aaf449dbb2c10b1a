"""The garbage collector, set for a worker that keeps a large heap for life and churns small records.

CPython's cyclic collector rescans every tracked object of its oldest generation whenever enough
survivors pile up. A worker's long-lived heap (imported modules, compiled plans, the NLP model's
vocabulary: from a hundred thousand to millions of objects) never becomes garbage, and a batch's
records are freed by reference counting as soon as the batch is done. So once that heap is built it
is frozen out of the collector's reach, and young collections run every ``YOUNG_THRESHOLD``
allocations instead of 700, so that most of a batch's objects are gone before a collection looks at
them. What this saves is measured in bench/README.md.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000


def settle() -> None:
    """Collect once, then freeze everything alive: call when a long-lived heap has just been built.

    Frozen objects are still freed by reference counting; only cycles among them would stay, and the
    heap frozen here lives as long as the process anyway.
    """
    gc.collect()
    gc.freeze()


def tune_collector() -> None:
    """Young collections every ``YOUNG_THRESHOLD`` allocations (never more often than already set)."""
    young, middle, old = gc.get_threshold()
    if young:  # 0 means the collector was switched off on purpose: leave it so
        gc.set_threshold(max(young, YOUNG_THRESHOLD), middle, old)
