"""Differencing two windows that differ by one user does not tell whether the user was there, beyond epsilon.

The attacker knows every record of a cohort except whether one target user (who floods the window with
records) took part, and sees the published aggregate. Epsilon-differential privacy says that for every
test the attacker can run on the output, P(test fires | user present) <= e^epsilon * P(test fires |
user absent), and the same with the roles swapped.

Many independent trials run at once through the real path (core, bounding, noise, suppression, ledger):
a window holds 10,000 cohorts, each one trial, and the neighbouring window the same cohorts without their
target users. The noise of one cohort does not depend on how many cohorts there are (the sensitivity is
per user), so each cohort is one draw of the experiment. For every threshold on the attacker's statistic
the bound is checked with a sampling-error slack of 5.5 standard errors, and the best test is shown to
get close to e^epsilon: the noise is not larger than it needs to be either.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stream_anon.aggregate import AggregateSettings, Ledger, Limits, Mechanisms, Releaser, WindowedAggregation

TRIALS = 10_000
BASE_USERS = 10  # one record each, rating 3
FLOOD = 10  # the target's records, rating 5; bounding keeps k = 3 of them
DAY = 86_400_000
Z = 5.5  # standard errors of slack per threshold


def settings(tmp_path: Path) -> AggregateSettings:
    return AggregateSettings.model_validate(
        {
            "event_time_field": "submitted_at",
            "group_by": ["trial"],
            "cohort_values": {"trial": [str(i) for i in range(TRIALS)]},
            "user_field": "user_id",
            "max_records_per_user": 3,
            "epsilon": {"count": 1.0, "distinct_users": 0.5},
            "numeric": {"rating": {"min": 1, "max": 5, "epsilon": 1.0}},
            "suppress_below": 0,
            "budget": {"per_window": 2.5, "lifetime": 5},
            "ledger": tmp_path / "ledger.jsonl",
        }
    )


def published(
    tmp_path: Path,
) -> tuple[AggregateSettings, list[dict[str, Any] | None], list[dict[str, Any] | None]]:
    """Per trial, the record published with the target present and without (None = suppressed)."""
    s = settings(tmp_path)
    limits = Limits(s.budget.per_window, s.budget.per_window_delta, s.budget.lifetime)
    mechanisms = Mechanisms(s)
    with Ledger(s.ledger, limits) as ledger:
        agg = WindowedAggregation(s, admit=ledger.admitter(mechanisms.window_spend.epsilon))
        for day, with_target in ((0, True), (1, False)):
            at = day * DAY
            for trial in range(TRIALS):
                t = str(trial)
                for u in range(BASE_USERS):
                    agg.add({"user_id": f"{t}-{u}", "trial": t, "submitted_at": at, "rating": 3})
                if with_target:
                    for _ in range(FLOOD):
                        agg.add({"user_id": f"{t}-target", "trial": t, "submitted_at": at, "rating": 5})
        present_window, absent_window = agg.close_ready(close_all=True)
        releaser = Releaser(s, mechanisms, ledger)
        present, absent = releaser.release(present_window), releaser.release(absent_window)
    assert present is not None and absent is not None

    def by_trial(records: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
        found: dict[str, dict[str, Any]] = {r["cohort"]["trial"]: r for r in records}
        return [found.get(str(i)) for i in range(TRIALS)]

    return s, by_trial(present.records), by_trial(absent.records)


def threshold_tests(present: Sequence[float], absent: Sequence[float]) -> list[tuple[float, float]]:
    """(P(stat >= t | present), P(stat >= t | absent)) for every threshold t between observed values."""
    thresholds = sorted(set(present) | set(absent))
    n1, n0 = len(present), len(absent)
    s1, s0 = sorted(present), sorted(absent)
    out = []
    i1 = i0 = 0
    for t in thresholds:
        while i1 < n1 and s1[i1] < t:
            i1 += 1
        while i0 < n0 and s0[i0] < t:
            i0 += 1
        out.append(((n1 - i1) / n1, (n0 - i0) / n0))
    return out


def check_epsilon_bound(tests: list[tuple[float, float]], epsilon: float, n: int) -> tuple[float, float]:
    """Assert every threshold test (and its complement, both ways) within e^epsilon plus sampling slack.

    Returns the largest probability ratio among tests whose probabilities are at least 5 % (estimated
    well enough to mean something) and the best distinguishing advantage max |p1 - p0|."""
    bound = math.exp(epsilon)
    best_ratio = 1.0
    for p1, p0 in tests:
        for a, b in ((p1, p0), (p0, p1), (1 - p1, 1 - p0), (1 - p0, 1 - p1)):
            slack = Z * math.sqrt((a * (1 - a) + bound**2 * b * (1 - b)) / n) + 1 / n
            assert a <= bound * b + slack, f"P={a:.4f} exceeds e^eps * {b:.4f} + {slack:.4f}"
            if min(a, b) >= 0.05:
                best_ratio = max(best_ratio, a / b)
    advantage = max(abs(p1 - p0) for p1, p0 in tests)
    # epsilon-DP caps any test's advantage (total variation) at (e^eps - 1) / (e^eps + 1).
    assert advantage <= (bound - 1) / (bound + 1) + Z * math.sqrt(0.5 / n)
    return best_ratio, advantage


def test_differencing_two_windows_cannot_tell_one_user_apart_beyond_epsilon(tmp_path: Path) -> None:
    s, present, absent = published(tmp_path)
    suppressed = -math.inf  # a suppressed cohort is an output too: it sorts below every count

    # 1. The noisy record count alone: the target moves it by k = 3, exactly its sensitivity.
    counts1 = [r["records"] if r else suppressed for r in present]
    counts0 = [r["records"] if r else suppressed for r in absent]
    ratio, advantage = check_epsilon_bound(threshold_tests(counts1, counts0), s.epsilon.count, TRIALS)
    # The best test gets close to e^epsilon (2.72): the noise is calibrated, not merely large.
    assert ratio > math.exp(0.7 * s.epsilon.count)
    assert advantage > 0.2

    # 2. Everything published about the cohort, combined by the optimal (likelihood-ratio) statistic.
    mech = Mechanisms(s)
    scales = {"records": mech.count_scale, "users": mech.distinct_scale, "rating": mech.sum_scales["rating"]}
    without = {"records": BASE_USERS, "users": BASE_USERS, "rating": 3.0 * BASE_USERS}
    with_target = {"records": BASE_USERS + 3, "users": BASE_USERS + 1, "rating": 3.0 * BASE_USERS + 3 * 5}

    def llr(r: dict[str, Any] | None) -> float:
        if r is None:
            return suppressed
        observed = {"records": r["records"], "users": r["users"], "rating": r["sums"]["rating"]}
        return sum(
            (abs(observed[f] - without[f]) - abs(observed[f] - with_target[f])) / scales[f] for f in scales
        )

    tests = threshold_tests([llr(r) for r in present], [llr(r) for r in absent])
    check_epsilon_bound(tests, s.window_epsilon, TRIALS)


def test_without_noise_the_same_attack_would_succeed_every_time(tmp_path: Path) -> None:
    """The statistical check is not toothless: on exact figures it detects the user with certainty."""
    s = settings(tmp_path)
    agg = WindowedAggregation(s)
    for day, extra in ((0, FLOOD), (1, 0)):
        for u in range(BASE_USERS):
            agg.add({"user_id": f"u{u}", "trial": "0", "submitted_at": day * DAY, "rating": 3})
        for _ in range(extra):
            agg.add({"user_id": "target", "trial": "0", "submitted_at": day * DAY, "rating": 5})
    present, absent = agg.close_ready(close_all=True)
    exact1 = [float(present.cohorts[("0",)].records)] * 100
    exact0 = [float(absent.cohorts[("0",)].records)] * 100
    tests = threshold_tests(exact1, exact0)
    assert max(abs(p1 - p0) for p1, p0 in tests) == 1.0
