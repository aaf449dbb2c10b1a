"""Attacks on the aggregate job's budget: each passes only when the attacker's advantage is within epsilon.

The issue 21 attack: a target user alone in cohort LU in window 0 (suppressed), then LU with hundreds of
other users in windows 1 and 2. With budgets per cohort, the target's suppressed records spent LU's
budget, so LU went unpublished in window 2 in every world with the target and was published in every
world without: whether the target had been there was revealed (100 % success). Here each world runs
through the job's core (windowing, lifetime admission, noise, suppression, ledger); the attacker guesses
"target present" from what is published, and the check allows the epsilon-DP cap on the target's whole
loss plus Z binomial standard errors at the cap (a correct job fails it with probability below 3e-7).
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

from stream_anon.aggregate import (
    AggregateMetrics,
    AggregateSettings,
    Ledger,
    Limits,
    Mechanisms,
    Releaser,
    WindowedAggregation,
)

DAY = 86_400_000
WORLDS = 400
Z = 5.0


def settings(tmp_path: Path, **overrides: Any) -> AggregateSettings:
    values: dict[str, Any] = {
        "event_time_field": "at",
        "group_by": ["country"],
        "user_field": "user",
        "max_records_per_user": 1,
        "epsilon": {"count": 0.1, "distinct_users": 0.1},  # small: the cap is tight, the test has power
        "suppress_below": 132,  # the smallest with delta <= 1e-6 at scale 10
        "budget": {"per_window": 0.2, "lifetime": 0.4},  # two windows per person
        "ledger": tmp_path / "ledger.jsonl",
    }
    values.update(overrides)
    return AggregateSettings.model_validate(values)


def cap(epsilon: float) -> float:
    return math.exp(epsilon) / (1 + math.exp(epsilon))


def allowance(epsilon: float, n: int) -> float:
    c = cap(epsilon)
    return Z * math.sqrt(c * (1 - c) / n)


def run_world(
    s: AggregateSettings, mechanisms: Mechanisms, ledger_path: Path, days: list[list[tuple[str, str]]]
) -> tuple[list[set[str]], AggregateMetrics]:
    """Per window, the cohorts published; ``days`` lists each window's (user, country) records."""
    metrics = AggregateMetrics()
    limits = Limits(s.budget.per_window, s.budget.per_window_delta, s.budget.lifetime)
    with Ledger(ledger_path, limits) as ledger:
        agg = WindowedAggregation(s, metrics, admit=ledger.admitter(mechanisms.window_spend.epsilon))
        releaser = Releaser(s, mechanisms, ledger, metrics)
        published = []
        for day, records in enumerate(days):
            for user, country in records:
                agg.add({"user": user, "country": country, "at": day * DAY})
            # windows close one at a time, as the watermark passes each in the running job
            for window in agg.close_ready(close_all=True):
                release = releaser.release(window)
                assert release is not None
                published.append({r["cohort"]["country"] for r in release.records})
    return published, metrics


def test_a_suppressed_appearance_does_not_change_later_publication(tmp_path: Path) -> None:
    s = settings(tmp_path)
    mechanisms = Mechanisms(s)
    crowd = [(f"lu-{i}", "LU") for i in range(300)]
    rng = random.Random(23)
    secrets = [rng.random() < 0.5 for _ in range(WORLDS)]
    guesses = []
    side_channel = set()
    for n, present in enumerate(secrets):
        first = [("target", "LU")] if present else [("someone-else", "DE")]
        published, metrics = run_world(s, mechanisms, tmp_path / f"world-{n}.jsonl", [first, crowd, crowd])
        assert published[1] == {"LU"}  # 300 users: far above the threshold in either world
        guesses.append("LU" not in published[2])  # the attack
        side_channel.add(
            (
                metrics.registry.get_sample_value("stream_anon_aggregate_persons_out_of_budget_total"),
                metrics.registry.get_sample_value("stream_anon_aggregate_budget_refusals_total"),
            )
        )
    rate = sum(g == p for g, p in zip(guesses, secrets, strict=True)) / WORLDS
    # The target took part in window 0 only: its whole loss is one window's epsilon.
    bound = cap(s.window_epsilon) + allowance(s.window_epsilon, WORLDS)
    assert rate <= bound, f"LU's publication in window 2 tells the target's presence in {rate:.1%}"
    assert side_channel == {(0.0, 0.0)}, "the budget metrics differ between the worlds"


def test_a_person_counts_in_at_most_lifetime_windows_whatever_cohorts_they_move_through(
    tmp_path: Path,
) -> None:
    """A target moving between cohorts spent the sum of their budgets; now the person's budget caps it.

    After the target's lifetime is spent (two windows of 0.2 for a lifetime of 0.4), every later window
    holds exactly the figures it would hold without the target: the rest of the output cannot depend on
    the target, whatever the attacker does with it.
    """
    s = settings(tmp_path)
    mechanisms = Mechanisms(s)
    countries = ["DE", "FR", "LU", "IT", "ES", "NL"]
    base = [[(f"{c}-{d}-{i}", c) for c in countries for i in range(5)] for d in range(len(countries))]
    with_target = [[*records, ("target", countries[d])] for d, records in enumerate(base)]

    def closed(days: list[list[tuple[str, str]]], name: str) -> list[Any]:
        limits = Limits(s.budget.per_window, s.budget.per_window_delta, s.budget.lifetime)
        with Ledger(tmp_path / name, limits) as ledger:
            agg = WindowedAggregation(s, admit=ledger.admitter(mechanisms.window_spend.epsilon))
            out = []
            for day, records in enumerate(days):
                for user, country in records:
                    agg.add({"user": user, "country": country, "at": day * DAY})
                out += agg.close_ready(close_all=True)
                releaser = Releaser(s, mechanisms, ledger)
                for window in out[-1:]:
                    releaser.release(window)
            return out

    present, absent = closed(with_target, "with.jsonl"), closed(base, "without.jsonl")
    differing = [d for d in range(len(countries)) if present[d].cohorts != absent[d].cohorts]
    assert differing == [0, 1], "the target counts in its first two windows only"
    assert [w.persons_out_of_budget for w in present] == [0, 0, 1, 1, 1, 1]
