"""The budget ledger refuses to overspend, survives restarts, and is held by one process."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from stream_anon.aggregate import BudgetExceeded, Ledger, LedgerError, Limits

LIMITS = Limits(per_window=1.0, per_window_delta=1e-6, per_user_group=2.5)
RELEASE = [{"cohort": {"country": "DE"}, "records": 120}]


def charge(ledger: Ledger, start: int, epsilon: float = 1.0, groups: list[str] | None = None) -> None:
    ledger.charge(start, start + 10, epsilon, 0.0, groups if groups is not None else ['["DE"]'], RELEASE)


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
        assert ledger.group_spent('["DE"]') == 0.6


def test_a_user_group_stops_at_its_lifetime_budget(tmp_path: Path) -> None:
    with Ledger(tmp_path / "ledger.jsonl", LIMITS) as ledger:
        charge(ledger, 0, groups=['["DE"]', '["FR"]'])
        charge(ledger, 10, groups=['["DE"]'])
        assert ledger.affordable(['["DE"]', '["FR"]'], 1.0) == ['["FR"]']  # DE has 0.5 left
        with pytest.raises(BudgetExceeded, match="1 user group"):
            charge(ledger, 20, groups=['["DE"]', '["FR"]'])
        assert ledger.window(20) is None
        charge(ledger, 20, epsilon=0.5, groups=['["DE"]', '["FR"]'])
        assert ledger.group_spent('["DE"]') == pytest.approx(2.5)


def test_spend_and_releases_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    with Ledger(path, LIMITS) as ledger:
        charge(ledger, 0, groups=['["DE"]'])
        ledger.mark_published(0)
        charge(ledger, 10, groups=['["DE"]'])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it names every cohort seen
    with Ledger(path, LIMITS) as ledger:
        assert ledger.is_published(0) and not ledger.is_published(10)
        entry = ledger.window(10)
        assert entry is not None and entry.release == RELEASE
        assert ledger.group_spent('["DE"]') == 2.0
        with pytest.raises(BudgetExceeded):
            charge(ledger, 20, groups=['["DE"]'])


def test_a_torn_last_entry_is_dropped_and_a_corrupt_one_stops_the_job(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    with Ledger(path, LIMITS) as ledger:
        charge(ledger, 0)
    with path.open("a") as f:
        f.write('{"type": "charge", "window_st')  # a crash in the middle of an append
    with Ledger(path, LIMITS) as ledger:
        assert ledger.window(0) is not None
        charge(ledger, 10, groups=[])
    assert all(json.loads(line) for line in path.read_text().splitlines())
    path.write_text('{"type": "charge"}\n' + path.read_text())
    with pytest.raises(LedgerError, match="corrupt at line 1"):
        Ledger(path, LIMITS).open()


def test_one_process_holds_the_ledger(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    with Ledger(path, LIMITS), pytest.raises(LedgerError, match="locked by another process"):
        Ledger(path, LIMITS).open()
    Ledger(path, LIMITS).open().close()  # released on close
