"""The privacy-budget ledger: an append-only JSON Lines file of what each window spent and released.

Two entries per window:

* ``charge`` (written and fsynced *before* anything is produced): the window, its epsilon and delta, the
  persons whose records it used (keyed 64-bit hashes of their user ids), and the noisy release itself. A
  window is charged at most once; if its publication fails, the retry publishes the stored release
  again, so noise is never drawn twice.
* ``published``: the Kafka transaction holding the release committed.

Budgets are per person, never per cohort: every window's release costs its epsilon to each person whose
records it used, and a person whose lifetime budget cannot take another window is left out of later
windows (``admit``). That decision depends on the person's own past records only, so whether anything
is published never depends on who else was present (issue 21: a per-cohort budget spent by a target's
suppressed records changed whether the cohort was published later). The ledger refuses a charge that
would take a window past ``per_window`` (epsilon or delta) or a person past ``lifetime``. One process
holds the file at a time (an exclusive lock), and the file is created readable by its owner only: it
names every cohort seen, suppressed ones included.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

# Floating-point sums of epsilons: a total this close to the budget is within it.
_TOLERANCE = 1e-9


class LedgerError(Exception):
    """The ledger cannot be used (locked by another process, unreadable, corrupt)."""


class BudgetExceeded(Exception):
    """A charge would exceed a configured total; nothing was written."""


@dataclass(slots=True)
class WindowEntry:
    start_ms: int
    end_ms: int
    epsilon: float
    delta: float
    release: list[dict[str, Any]]
    published: bool = False


@dataclass(frozen=True, slots=True)
class Limits:
    per_window: float
    per_window_delta: float
    lifetime: float  # most epsilon charged to one person over all windows


@dataclass(slots=True)
class _State:
    windows: dict[int, WindowEntry] = field(default_factory=dict)
    persons: dict[int, float] = field(default_factory=dict)  # epsilon charged, by person key


def pack_persons(persons: Sequence[int]) -> str:
    """Person keys (64-bit) as one base64 string: 8 bytes each, a ledger line stays compact."""
    return base64.b64encode(b"".join(p.to_bytes(8, "big") for p in persons)).decode()


def unpack_persons(text: str) -> list[int]:
    raw = base64.b64decode(text, validate=True)
    if len(raw) % 8:
        raise ValueError("person keys are 8 bytes each")
    return [int.from_bytes(raw[i : i + 8], "big") for i in range(0, len(raw), 8)]


class Ledger:
    """The budget ledger file, opened and locked for one process."""

    def __init__(self, path: Path, limits: Limits) -> None:
        self.path = path
        self.limits = limits
        self._state = _State()
        # Windows closed but not yet charged: the epsilon and persons their admission set aside.
        self._reserved: dict[int, tuple[float, frozenset[int]]] = {}
        self._file: IO[str] | None = None

    def open(self) -> Ledger:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise LedgerError(f"cannot open the ledger {self.path}: {exc.strerror}") from None
        handle = os.fdopen(fd, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise LedgerError(
                f"the ledger {self.path} is locked by another process: one aggregate job per ledger"
            ) from None
        self._file = handle
        try:
            self._load(handle)
        except LedgerError:
            self.close()
            raise
        return self

    def close(self) -> None:
        if self._file is not None:
            self._file.close()  # closing releases the lock
            self._file = None

    def __enter__(self) -> Ledger:
        return self.open()

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def empty(self) -> bool:
        return not self._state.windows

    def window(self, start_ms: int) -> WindowEntry | None:
        return self._state.windows.get(start_ms)

    def is_published(self, start_ms: int) -> bool:
        entry = self._state.windows.get(start_ms)
        return entry is not None and entry.published

    @property
    def charged_windows(self) -> int:
        return len(self._state.windows)

    def person_spent(self, person: int) -> float:
        """Epsilon charged to one person (a key from ``windows.person_key``) over all charged windows."""
        return self._state.persons.get(person, 0.0)

    def admitter(self, epsilon: float) -> Callable[[int, list[int]], list[int]]:
        """``admit`` for windows that each spend ``epsilon``: what the windowing core asks at close."""
        return lambda start_ms, persons: self.admit(start_ms, epsilon, persons)

    def admit(self, start_ms: int, epsilon: float, persons: Iterable[int]) -> list[int]:
        """The persons whose lifetime budget still takes ``epsilon`` for this window, set aside for it.

        Asked once per window as it closes; the answer for a person depends on that person's past
        windows only. A window already charged (replayed after a restart) admits everyone: its release
        comes from the ledger, not from these figures.
        """
        if start_ms in self._state.windows:
            return list(persons)
        if start_ms in self._reserved:
            return sorted(self._reserved[start_ms][1])
        cap = self.limits.lifetime + _TOLERANCE
        spent = self._state.persons
        others = list(self._reserved.values())
        admitted = [
            p
            for p in persons
            if spent.get(p, 0.0) + sum(eps for eps, held in others if p in held) + epsilon <= cap
        ]
        self._reserved[start_ms] = (epsilon, frozenset(admitted))
        return admitted

    def charge(
        self,
        start_ms: int,
        end_ms: int,
        epsilon: float,
        delta: float,
        persons: Sequence[int],
        release: list[dict[str, Any]],
    ) -> None:
        """Record a window's spend and release durably, or raise ``BudgetExceeded`` and write nothing."""
        if start_ms in self._state.windows:
            prior = self._state.windows[start_ms]
            # A second draw for the same window would spend its epsilon again: windows are released once.
            raise BudgetExceeded(
                f"window starting at {start_ms} already spent epsilon {prior.epsilon:g}; a second release "
                f"would bring it to {prior.epsilon + epsilon:g} (per_window {self.limits.per_window:g})"
            )
        if epsilon > self.limits.per_window + _TOLERANCE:
            raise BudgetExceeded(f"epsilon {epsilon:g} exceeds per_window {self.limits.per_window:g}")
        if delta > self.limits.per_window_delta + _TOLERANCE * 1e-6:
            raise BudgetExceeded(
                f"delta {delta:.3g} exceeds per_window_delta {self.limits.per_window_delta:g}"
            )
        cap = self.limits.lifetime + _TOLERANCE
        over = sum(1 for p in persons if self._state.persons.get(p, 0.0) + epsilon > cap)
        if over:
            raise BudgetExceeded(
                f"{over} person(s) would exceed the lifetime budget {self.limits.lifetime:g}"
            )
        self._append(
            {
                "type": "charge",
                "window_start": start_ms,
                "window_end": end_ms,
                "epsilon": epsilon,
                "delta": delta,
                "persons": pack_persons(persons),
                "release": release,
            }
        )
        self._apply_charge(start_ms, end_ms, epsilon, delta, persons, release)

    def mark_published(self, start_ms: int) -> None:
        entry = self._state.windows.get(start_ms)
        if entry is None:
            raise LedgerError(f"window starting at {start_ms} was never charged")
        if not entry.published:
            self._append({"type": "published", "window_start": start_ms})
            entry.published = True

    def _append(self, entry: dict[str, Any]) -> None:
        if self._file is None:
            raise LedgerError("the ledger is not open")
        self._file.write(json.dumps(entry, separators=(",", ":")) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def _apply_charge(
        self,
        start_ms: int,
        end_ms: int,
        epsilon: float,
        delta: float,
        persons: Sequence[int],
        release: list[dict[str, Any]],
    ) -> None:
        self._state.windows[start_ms] = WindowEntry(start_ms, end_ms, epsilon, delta, release)
        self._reserved.pop(start_ms, None)
        spent = self._state.persons
        for person in persons:
            spent[person] = spent.get(person, 0.0) + epsilon

    def _load(self, handle: IO[str]) -> None:
        handle.seek(0)
        lines = handle.read().split("\n")
        # The file ends with "\n" after every complete entry; a crash mid-append leaves a partial last line,
        # which was never fsynced as a whole and so never followed by a publication: it is dropped.
        complete, tail = lines[:-1], lines[-1]
        for number, line in enumerate(complete, start=1):
            try:
                entry = json.loads(line)
                if entry["type"] == "charge" and "groups" in entry and "persons" not in entry:
                    raise LedgerError(
                        f"the ledger {self.path} was written before budgets were kept per person (line "
                        f"{number}): it does not say whose records its windows used. Start a new ledger "
                        "with a new aggregates topic"
                    )
                if entry["type"] == "charge":
                    self._apply_charge(
                        int(entry["window_start"]),
                        int(entry["window_end"]),
                        float(entry["epsilon"]),
                        float(entry["delta"]),
                        unpack_persons(str(entry["persons"])),
                        list(entry["release"]),
                    )
                elif entry["type"] == "published":
                    self._state.windows[int(entry["window_start"])].published = True
                else:
                    raise ValueError("unknown entry type")
            except (ValueError, KeyError, TypeError):
                raise LedgerError(f"the ledger {self.path} is corrupt at line {number}") from None
        if tail:
            size = os.fstat(handle.fileno()).st_size
            os.ftruncate(handle.fileno(), size - len(tail.encode("utf-8")))
