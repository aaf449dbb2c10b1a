"""The privacy-budget ledger: an append-only JSON Lines file of what each window spent and released.

Two entries per window:

* ``charge`` (written and fsynced *before* anything is produced): the window, its epsilon and delta, the
  user groups (cohorts) charged, and the noisy release itself. A window is charged at most once; if its
  publication fails, the retry publishes the stored release again, so noise is never drawn twice.
* ``published``: the Kafka transaction holding the release committed.

The ledger refuses a charge that would take a window past ``per_window`` (epsilon or delta) or a user
group past its lifetime ``per_user_group``. One process holds the file at a time (an exclusive lock), and
the file is created readable by its owner only: it names every cohort seen, suppressed ones included.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable
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
    per_user_group: float | None


@dataclass(slots=True)
class _State:
    windows: dict[int, WindowEntry] = field(default_factory=dict)
    groups: dict[str, float] = field(default_factory=dict)


class Ledger:
    """The budget ledger file, opened and locked for one process."""

    def __init__(self, path: Path, limits: Limits) -> None:
        self.path = path
        self.limits = limits
        self._state = _State()
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

    def group_spent(self, group: str) -> float:
        return self._state.groups.get(group, 0.0)

    def affordable(self, groups: Iterable[str], epsilon: float) -> list[str]:
        """The groups that can still take ``epsilon`` under their lifetime budget."""
        cap = self.limits.per_user_group
        if cap is None:
            return list(groups)
        return [g for g in groups if self._state.groups.get(g, 0.0) + epsilon <= cap + _TOLERANCE]

    def charge(
        self,
        start_ms: int,
        end_ms: int,
        epsilon: float,
        delta: float,
        groups: list[str],
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
        over = len(groups) - len(self.affordable(groups, epsilon))
        if over:
            raise BudgetExceeded(
                f"{over} user group(s) would exceed per_user_group {self.limits.per_user_group:g}"
            )
        self._append(
            {
                "type": "charge",
                "window_start": start_ms,
                "window_end": end_ms,
                "epsilon": epsilon,
                "delta": delta,
                "groups": groups,
                "release": release,
            }
        )
        self._apply_charge(start_ms, end_ms, epsilon, delta, groups, release)

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
        groups: list[str],
        release: list[dict[str, Any]],
    ) -> None:
        self._state.windows[start_ms] = WindowEntry(start_ms, end_ms, epsilon, delta, release)
        for group in groups:
            self._state.groups[group] = self._state.groups.get(group, 0.0) + epsilon

    def _load(self, handle: IO[str]) -> None:
        handle.seek(0)
        lines = handle.read().split("\n")
        # The file ends with "\n" after every complete entry; a crash mid-append leaves a partial last line,
        # which was never fsynced as a whole and so never followed by a publication: it is dropped.
        complete, tail = lines[:-1], lines[-1]
        for number, line in enumerate(complete, start=1):
            try:
                entry = json.loads(line)
                if entry["type"] == "charge":
                    self._apply_charge(
                        int(entry["window_start"]),
                        int(entry["window_end"]),
                        float(entry["epsilon"]),
                        float(entry["delta"]),
                        [str(g) for g in entry["groups"]],
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
