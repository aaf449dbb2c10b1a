"""The benchmark report judges a ratio target on the median of its rounds, each round's ratio taken
from the same round's two cases."""

from __future__ import annotations

from typing import Any

from bench.report import markdown, targets


def _case(*rates: float) -> dict[str, Any]:
    return {
        "title": "t",
        "short": "s",
        "records": 1000,
        "records_per_s": rates[0],
        "rounds": [{"records_per_s": r, "cpu_per_1k": 0.1} for r in rates],
    }


def _results(cases: dict[str, Any]) -> dict[str, Any]:
    return {
        "mode": "full",
        "started": "2026-11-29 12:00 UTC",
        "duration_s": 1.0,
        "machine": {
            "cpu_model": "cpu",
            "logical_cpus": 2,
            "physical_cores": 2,
            "ram_gb": 1,
            "os": "linux",
            "python": "3.11",
            "librdkafka": "x",
            "kafka": "x",
            "java": "x",
            "packages": {},
        },
        "load_average": {"start": [0], "end": [0]},
        "data": {"records": 1000, "seed": 7, "mean_record_bytes": 300, "comments_with_pii": 0.4},
        "settings": {"batch_size": 500},
        "cases": cases,
    }


def _target(results: dict[str, Any], ident: str) -> Any:
    (found,) = [t for t in targets(results) if t.ident == ident]
    return found


def test_a_ratio_target_is_the_median_of_the_rounds_ratios_not_of_round_one() -> None:
    # round 1 alone would pass (80%); the rounds' ratios are 80%, 50%, 60%: the median, 60%, fails
    results = _results({"7": _case(100, 100, 100), "3": _case(80, 50, 60), "2": _case(200, 200, 200)})
    floor = _target(results, "3/7")
    assert floor.value == 0.6
    assert floor.passed is False
    assert floor.measured == "60% (median of 3 rounds: 80%, 50%, 60%)"
    assert _target(results, "3/2").value == 0.3


def test_each_rounds_ratio_pairs_the_same_round_of_both_cases() -> None:
    # both cases slow in round 2 (a noisy minute): paired, every ratio is 75%
    results = _results({"7": _case(100, 40, 100), "3": _case(75, 30, 75)})
    assert _target(results, "3/7").value == 0.75


def test_one_round_is_judged_as_it_is() -> None:
    results = _results({"7": {**_case(100), "rounds": None}, "3": {**_case(71), "rounds": None}})
    floor = _target(results, "3/7")
    assert floor.value == 0.71 and floor.passed is True and floor.measured == "71%"


def test_the_report_shows_every_round_and_the_bound() -> None:
    results = _results({"2": _case(300, 310), "7": _case(100, 90), "8": _case(80, 72), "3": _case(60, 54)})
    text = markdown(results)
    assert "| 2 | 310 | 90 | 72 | 54 |" in text  # round 2
    # medians of 80/300 and 72/310 (27% and 23%)
    assert "8 reached 25% of 2's records/s and 80% of 7's; 3 reached 75% of 8's" in text
    assert "out of reach in this run" in text


def test_scaling_is_judged_on_the_median_of_its_rounds_too() -> None:
    results = _results({"6-1": _case(100, 100, 100), "6-2": _case(160, 190, 175)})
    scaling = _target(results, "6 scaling")
    assert scaling.passed is True
    assert scaling.measured == "1.75x (median of 3 rounds: 1.60x, 1.90x, 1.75x)"
