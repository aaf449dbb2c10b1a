"""The budget ledger refuses to overspend, survives restarts, and is held by one process."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from stream_anon.aggregate import BudgetExceeded, Ledger, LedgerError, Limits

LIMITS = Limits(per_window=1.0, per_window_delta=1e-6, lifetime=2.5)
RELEASE = [{"cohort": {"country": "DE"}, "records": 120}]
ANNA, BEN = 2**64 - 1, 7  # person keys (64-bit hashes of user ids)


def charge(ledger: Ledger, start: int, epsilon: float = 1.0, persons: list[int] | None = None) -> None:
    ledger.charge(start, start + 10, epsilon, 0.0, persons if persons is not None else [ANNA], RELEASE)


def test_a_window_cannot_spend_more_than_its_budget(tmp_path: Path) -> None:
    with Ledger(tmp_path / "ledger.jsonl", LIMITS) as ledger:
        with pytest.raises(BudgetExceeded, match="per_window"):
            charge(ledger, 0, epsilon=1.2)
        with pytest.raises(BudgetExceeded, match="delta"):
            ledger.charge(0, 10, 0.5, 1e-3, [], RELEASE)
        assert ledger.window(0) is None  # a refused charge leaves no trace


def test_a_window_is_charged_once_a_second_release_is_refused(tmp_path: Path) -> None:
    with Ledger(tmp_path / "ledger.jsonl", LIMITS) as ledger:
        charge(ledger, 0, epsilon=0.6)
        with pytest.raises(BudgetExceeded, match=r"already spent epsilon 0\.6"):
            charge(ledger, 0, epsilon=0.6)
        assert ledger.person_spent(ANNA) == 0.6


def test_a_person_stops_at_their_lifetime_budget(tmp_path: Path) -> None:
    with Ledger(tmp_path / "ledger.jsonl", LIMITS) as ledger:
        charge(ledger, 0, persons=[ANNA, BEN])
        charge(ledger, 10, persons=[ANNA])
        assert ledger.admit(20, 1.0, [ANNA, BEN]) == [BEN]  # Anna has 0.5 left
        with pytest.raises(BudgetExceeded, match="1 person"):
            charge(ledger, 20, persons=[ANNA, BEN])
        assert ledger.window(20) is None
        charge(ledger, 20, epsilon=0.5, persons=[ANNA, BEN])
        assert ledger.person_spent(ANNA) == pytest.approx(2.5)


def test_admission_sets_budget_aside_for_windows_not_yet_charged(tmp_path: Path) -> None:
    """Two windows closing together: the second sees what the first took, before either is charged."""
    with Ledger(tmp_path / "ledger.jsonl", LIMITS) as ledger:
        charge(ledger, 0, persons=[ANNA])
        assert ledger.admit(10, 1.0, [ANNA, BEN]) == [ANNA, BEN]
        assert ledger.admit(20, 1.0, [ANNA, BEN]) == [BEN]  # Anna: 1.0 spent + 1.0 set aside + 1.0 > 2.5
        assert sorted(ledger.admit(10, 1.0, [BEN])) == [BEN, ANNA]  # asked again: the first answer
        charge(ledger, 10, persons=[ANNA, BEN])
        assert ledger.admit(10, 1.0, [ANNA]) == [ANNA]  # charged: a replay admits everyone


def test_spend_and_releases_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    with Ledger(path, LIMITS) as ledger:
        charge(ledger, 0, persons=[ANNA])
        ledger.mark_published(0)
        charge(ledger, 10, persons=[ANNA, BEN])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it names every cohort seen
    with Ledger(path, LIMITS) as ledger:
        assert ledger.is_published(0) and not ledger.is_published(10)
        entry = ledger.window(10)
        assert entry is not None and entry.release == RELEASE
        assert (ledger.person_spent(ANNA), ledger.person_spent(BEN)) == (2.0, 1.0)
        assert ledger.charged_windows == 2
        with pytest.raises(BudgetExceeded):
            charge(ledger, 20, persons=[ANNA])


def test_a_torn_last_entry_is_dropped_and_a_corrupt_one_stops_the_job(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    with Ledger(path, LIMITS) as ledger:
        charge(ledger, 0)
    with path.open("a") as f:
        f.write('{"type": "charge", "window_st')  # a crash in the middle of an append
    with Ledger(path, LIMITS) as ledger:
        assert ledger.window(0) is not None
        charge(ledger, 10, persons=[])
    assert all(json.loads(line) for line in path.read_text().splitlines())
    path.write_text('{"type": "charge"}\n' + path.read_text())
    with pytest.raises(LedgerError, match="corrupt at line 1"):
        Ledger(path, LIMITS).open()


def test_a_ledger_from_before_per_person_budgets_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    old = {"type": "charge", "window_start": 0, "window_end": 10, "epsilon": 1.0, "delta": 0.0}
    path.write_text(json.dumps({**old, "groups": ['["DE"]'], "release": RELEASE}) + "\n")
    with pytest.raises(LedgerError, match="before budgets were kept per person"):
        Ledger(path, LIMITS).open()


def test_one_process_holds_the_ledger(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    with Ledger(path, LIMITS), pytest.raises(LedgerError, match="locked by another process"):
        Ledger(path, LIMITS).open()
    Ledger(path, LIMITS).open().close()  # released on close
