"""Tumbling event-time windows with allowed lateness and per-user contribution bounding; no Kafka here.

``WindowedAggregation.add`` places each record in its window; ``close_ready`` hands back the windows the
watermark has passed, with exact per-cohort figures computed from the bounded contributions only.

The watermark is the event time up to which input is taken as complete, minus the allowed lateness. It
is the smallest of the partitions' largest event times, so a partition still replaying a backlog holds
it back instead of seeing its records declared late; a partition read to its end (``caught_up``) stops
holding it back until it delivers again. Partitions announced with ``expect`` hold it back until their
first record or their end. It never moves backwards, and is advanced once per ``close_ready`` call.

Contribution bounding keeps at most ``k`` records per user per window by reservoir sampling: a uniform
sample of the user's records, whatever their number. The choice for one user depends only on that
user's own records and a seed (a keyed hash, not a shared random stream), so it is reproducible and
one user's flood cannot change which records of another user are kept.

Lifetime bounding: when a window closes, ``admit`` (the ledger's) says which persons' lifetime budget
still takes the window; the records of the others are left out of it. Persons are keyed 64-bit hashes
of their user ids, so the ledger never stores the ids themselves.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from itertools import product
from typing import Any

from stream_anon.aggregate.metrics import AggregateMetrics, SkipReason
from stream_anon.aggregate.settings import AggregateSettings
from stream_anon.dp.mechanisms import from_steps, grid_exponent, to_steps

Cohort = tuple[str | None, ...]
Position = tuple[str, int]  # (topic, partition)


class Added(Enum):
    ACCEPTED = "accepted"
    LATE = "late"
    SKIPPED = "skipped"


def field_value(record: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path (``user.user_id``); None when any step is missing or null."""
    return _lookup(record, tuple(path.split(".")))


def _accessor(path: str) -> Callable[[Mapping[str, Any]], Any]:
    """A getter for one dotted path; top-level fields (the common case) skip the loop."""
    names = tuple(path.split("."))
    if len(names) == 1:
        name = names[0]
        return lambda record: record.get(name)
    return lambda record: _lookup(record, names)


def _lookup(record: Mapping[str, Any], names: tuple[str, ...]) -> Any:
    value: Any = record
    for name in names:
        if type(value) is not dict and not isinstance(value, Mapping):
            return None
        value = value.get(name)
        if value is None:
            return None
    return value


def cohort_key(cohort: Cohort) -> str:
    """A cohort as one string: the JSON array of its grouping values (unambiguous, used by the ledger)."""
    return json.dumps(list(cohort), ensure_ascii=False, separators=(",", ":"))


def _group_value(value: Any) -> str | None:
    if value is None or type(value) is str:
        return value
    return json.dumps(value, sort_keys=True)


@dataclass(slots=True)
class _Reservoir:
    """The records kept for one user in one window: (cohort, clamped values in grid steps)."""

    seen: int = 0
    kept: list[tuple[Cohort, tuple[int, ...]]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CohortStats:
    """Exact figures of one cohort of a closed window, over the bounded contributions."""

    records: int
    users: int
    sums: tuple[float, ...]  # in the order of AggregateSettings.numeric
    # The same sums, exact, in grid steps of each field (dp.mechanisms.grid_exponent): the noise input.
    sum_steps: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class ClosedWindow:
    start_ms: int
    end_ms: int
    cohorts: dict[Cohort, CohortStats]
    records_seen: int
    records_kept: int
    persons: tuple[int, ...] = ()  # keys of the persons whose records the figures use
    persons_out_of_budget: int = 0  # persons left out: their lifetime budget was spent


# Asked as each window closes: which of these persons may still contribute to it (the ledger's admit).
Admit = Callable[[int, list[int]], list[int]]


@dataclass(slots=True)
class _OpenWindow:
    start_ms: int
    users: dict[str, _Reservoir] = field(default_factory=dict)
    first_offsets: dict[Position, int] = field(default_factory=dict)
    records_seen: int = 0


class WindowedAggregation:
    """Records in, closed windows out: event-time windowing, lateness, bounding, exact cohort figures."""

    def __init__(
        self,
        settings: AggregateSettings,
        metrics: AggregateMetrics | None = None,
        is_published: Callable[[int], bool] = lambda _start: False,
        admit: Admit | None = None,
    ) -> None:
        self._s = settings
        self._metrics = metrics if metrics is not None else AggregateMetrics()
        self._is_published = is_published
        self._admit = admit
        self._k = settings.max_records_per_user
        self._user = _accessor(settings.user_field)
        self._group_by = [_accessor(path) for path in settings.group_by]
        self._time = _accessor(settings.event_time_field) if settings.event_time_field else None
        # Clamped values are kept as whole grid steps, so that sums are exact integers (no rounding).
        self._numeric = [
            (_accessor(path), f.min, f.max, f.fill, grid_exponent(f.magnitude))
            for path, f in settings.numeric.items()
        ]
        self._exponents = [exponent for *_, exponent in self._numeric]
        self._allowed: set[Cohort] | None = (
            set(known_cohorts(settings)) if settings.cohort_values is not None else None
        )
        self._seed = settings.bounding_seed.to_bytes(8, "big", signed=True)
        self._open: dict[int, _OpenWindow] = {}
        self._next_offsets: dict[Position, int] = {}
        self._max_by_partition: dict[Position | None, int] = {}
        self._caught_up: set[Position] = set()
        self._waiting: set[Position] = set()
        self._watermark: int | None = None
        # Accepted records are counted here and reach the metric once per close_ready (once per batch):
        # a Prometheus increment per record would cost a fifth of the per-record time.
        self._accepted = 0

    @property
    def watermark_ms(self) -> int | None:
        """Windows ending at or before this event time are complete; None before any record."""
        return self._watermark

    def expect(self, positions: Iterable[Position]) -> None:
        """Partitions to hear from (a record or their end) before the watermark may advance."""
        self._waiting.update(p for p in positions if p not in self._max_by_partition)

    def caught_up(self, position: Position) -> None:
        """The partition was read to its end: it holds nothing back until its next record."""
        self._caught_up.add(position)
        self._waiting.discard(position)

    def window_start(self, event_ms: int) -> int:
        return event_ms - event_ms % self._s.window_ms

    def add(
        self,
        record: Mapping[str, Any],
        timestamp_ms: int | None = None,
        position: Position | None = None,
        offset: int = -1,
    ) -> Added:
        """Add one decoded record. ``timestamp_ms`` is used when no event_time_field is configured."""
        if position is not None:
            self._advance(position, offset)
            if self._caught_up or self._waiting:
                self._caught_up.discard(position)
                self._waiting.discard(position)
        event_ms = self._event_time(record, timestamp_ms)
        if event_ms is None:
            return self._skip(SkipReason.MISSING_EVENT_TIME)
        # Every timed record shows how far its partition has got, even one skipped or late below.
        if event_ms > self._max_by_partition.get(position, event_ms - 1):
            self._max_by_partition[position] = event_ms
        user = self._user(record)
        if user is None or user == "":
            return self._skip(SkipReason.MISSING_USER)
        cohort = tuple([_group_value(get(record)) for get in self._group_by])
        if self._allowed is not None and cohort not in self._allowed:
            return self._skip(SkipReason.UNKNOWN_COHORT)
        values = self._clamped(record)
        if values is None:
            return self._skip(SkipReason.BAD_VALUE)

        start = self.window_start(event_ms)
        watermark = self.watermark_ms
        if watermark is not None and start + self._s.window_ms <= watermark:
            self._metrics.late.inc()
            return Added.LATE
        window = self._open.get(start)
        if window is None:
            if self._is_published(start):
                return self._skip(SkipReason.REPLAYED)
            window = self._open[start] = _OpenWindow(start)
            self._metrics.open_windows.set(len(self._open))
        if position is not None and position not in window.first_offsets:
            window.first_offsets[position] = offset
        window.records_seen += 1
        self._keep(window, str(user), cohort, values)
        self._accepted += 1
        return Added.ACCEPTED

    def close_ready(self, close_all: bool = False) -> list[ClosedWindow]:
        """Remove and return the windows the watermark has passed (every open one if ``close_all``)."""
        watermark = self._advance_watermark()
        ready = sorted(
            start
            for start in self._open
            if close_all or (watermark is not None and start + self._s.window_ms <= watermark)
        )
        closed = [self._close(self._open.pop(start)) for start in ready]
        self._metrics.open_windows.set(len(self._open))
        self._metrics.records.inc(self._accepted)
        self._accepted = 0
        return closed

    def committable_offsets(self) -> dict[Position, int]:
        """Per partition, the offset a restart must resume from: the first record of an open window, or
        the next unread record when no open window holds one."""
        committable = dict(self._next_offsets)
        for window in self._open.values():
            for position, offset in window.first_offsets.items():
                committable[position] = min(committable[position], offset)
        return committable

    def _advance_watermark(self) -> int | None:
        if not self._waiting and self._max_by_partition:
            active = [m for p, m in self._max_by_partition.items() if p not in self._caught_up]
            complete_up_to = min(active) if active else max(self._max_by_partition.values())
            candidate = complete_up_to - self._s.allowed_lateness_ms
            if self._watermark is None or candidate > self._watermark:
                self._watermark = candidate
                self._metrics.watermark.set(candidate / 1000)
        return self._watermark

    def _event_time(self, record: Mapping[str, Any], timestamp_ms: int | None) -> int | None:
        if self._time is None:
            return timestamp_ms
        value = self._time(record)
        return value if type(value) is int else None

    def _clamped(self, record: Mapping[str, Any]) -> tuple[int, ...] | None:
        out = []
        for get, low, high, fill, exponent in self._numeric:
            value = get(record)
            if value is None:
                out.append(to_steps(fill, exponent))
            elif (type(value) is int or type(value) is float) and value == value:
                out.append(to_steps(min(max(float(value), low), high), exponent))
            else:
                return None  # a string, a bool, NaN: not a number this job can bound
        return tuple(out)

    def _keep(self, window: _OpenWindow, user: str, cohort: Cohort, values: tuple[int, ...]) -> None:
        reservoir = window.users.get(user)
        if reservoir is None:
            reservoir = window.users[user] = _Reservoir()
        reservoir.seen += 1
        if len(reservoir.kept) < self._k:
            reservoir.kept.append((cohort, values))
            return
        # Reservoir sampling (Algorithm R): the n-th record replaces a kept one with probability k/n.
        slot = self._draw(window.start_ms, user, reservoir.seen)
        if slot < self._k:
            reservoir.kept[slot] = (cohort, values)

    def _draw(self, start_ms: int, user: str, n: int) -> int:
        digest = hashlib.blake2b(
            f"{start_ms}|{user}|{n}".encode(), digest_size=8, key=self._seed, person=b"stream-anon-rsv"
        ).digest()
        return int.from_bytes(digest, "big") % n

    def person_key(self, user: str) -> int:
        """A person's key in the ledger: a keyed 64-bit hash of the user id (the id is not stored)."""
        digest = hashlib.blake2b(user.encode(), digest_size=8, key=self._seed, person=b"stream-anon-prs")
        return int.from_bytes(digest.digest(), "big")

    def _close(self, window: _OpenWindow) -> ClosedWindow:
        records: dict[Cohort, int] = {}
        users: dict[Cohort, int] = {}
        sums: dict[Cohort, list[int]] = {}
        kept = 0
        reservoirs = list(window.users.values())
        persons: list[int] = []
        out_of_budget = 0
        if self._admit is not None:
            keys = {self.person_key(user): reservoir for user, reservoir in window.users.items()}
            persons = sorted(self._admit(window.start_ms, sorted(keys)))
            out_of_budget = len(keys) - len(persons)
            reservoirs = [keys[p] for p in persons]
            if out_of_budget:
                self._metrics.out_of_budget.inc(out_of_budget)
        for reservoir in reservoirs:
            for cohort in {cohort for cohort, _ in reservoir.kept}:
                users[cohort] = users.get(cohort, 0) + 1
            for cohort, values in reservoir.kept:
                kept += 1
                records[cohort] = records.get(cohort, 0) + 1
                total = sums.setdefault(cohort, [0] * len(values))
                for i, value in enumerate(values):
                    total[i] += value
        cohorts = {
            cohort: CohortStats(
                records[cohort],
                users[cohort],
                tuple(from_steps(t, e) for t, e in zip(sums[cohort], self._exponents, strict=True)),
                tuple(sums[cohort]),
            )
            for cohort in records
        }
        return ClosedWindow(
            window.start_ms,
            window.start_ms + self._s.window_ms,
            cohorts,
            window.records_seen,
            kept,
            tuple(persons),
            out_of_budget,
        )

    def skip(self, reason: SkipReason, position: Position | None = None, offset: int = -1) -> Added:
        """Count a record that enters no window (undecodable, say); its offset may still be committed."""
        if position is not None:
            self._advance(position, offset)
        return self._skip(reason)

    def _advance(self, position: Position, offset: int) -> None:
        if offset >= self._next_offsets.get(position, 0):
            self._next_offsets[position] = offset + 1

    def _skip(self, reason: SkipReason) -> Added:
        self._metrics.skipped.labels(reason.value).inc()
        return Added.SKIPPED


def known_cohorts(settings: AggregateSettings) -> list[Cohort]:
    """Every combination of the configured cohort values, in a stable order."""
    if settings.cohort_values is None:
        return []
    columns: Iterable[list[str]] = (settings.cohort_values[path] for path in settings.group_by)
    return [tuple(values) for values in product(*columns)]
