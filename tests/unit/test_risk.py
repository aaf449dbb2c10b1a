"""k-anonymity and l-diversity figures match a small example computed by hand."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stream_anon.risk import assess, format_table


def feedback(country: str, age: str | None, rating: int, with_age: bool = True) -> dict[str, Any]:
    user: dict[str, Any] = {"country": country}
    if with_age:
        user["age_band"] = age
    return {"user": user, "rating": rating}


# Equivalence classes over (user.country, user.age_band), with the ratings in each:
#   (DE, 30-39)   3 records  ratings {5, 4}  l = 2
#   (DE, 40-49)   2 records  ratings {2}     l = 1
#   (FR, 30-39)   1 record   ratings {3}     l = 1
#   (FR, missing) 2 records  ratings {1, 4}  l = 2   (a null and an absent age are the same unknown)
RECORDS = [
    feedback("DE", "30-39", 5),
    feedback("DE", "30-39", 4),
    feedback("DE", "30-39", 5),
    feedback("DE", "40-49", 2),
    feedback("DE", "40-49", 2),
    feedback("FR", "30-39", 3),
    feedback("FR", None, 1),
    feedback("FR", None, 4, with_age=False),
]
QI = ["user.country", "user.age_band"]


def test_k_anonymity_of_the_hand_computed_example() -> None:
    report = assess(RECORDS, QI, k=3)
    assert report.records == 8
    assert report.classes == 4
    assert report.smallest_class == 1
    assert report.classes_below_k == 3  # sizes 2, 1, 2
    assert report.records_below_k == 5
    assert report.share_below_k == pytest.approx(5 / 8)
    assert report.unique_records == 1
    assert report.sensitive is None and report.smallest_l is None


def test_a_lower_k_leaves_only_the_singleton_below() -> None:
    report = assess(RECORDS, QI, k=2)
    assert (report.classes_below_k, report.records_below_k, report.share_below_k) == (1, 1, 1 / 8)


def test_l_diversity_of_the_hand_computed_example() -> None:
    report = assess(RECORDS, QI, k=3, sensitive="rating", l=2)
    assert report.smallest_l == 1
    assert report.classes_below_l == 2  # (DE, 40-49) and (FR, 30-39)
    assert report.records_below_l == 3
    assert report.share_below_l == pytest.approx(3 / 8)
    report3 = assess(RECORDS, QI, sensitive="rating", l=3)
    assert (report3.classes_below_l, report3.records_below_l) == (4, 8)


def test_one_quasi_identifier_alone() -> None:
    report = assess(RECORDS, ["user.country"], k=4)
    assert (report.classes, report.smallest_class, report.records_below_k) == (2, 3, 3)


def test_an_empty_window_reports_zeros() -> None:
    report = assess([], QI, sensitive="rating")
    assert (report.records, report.classes, report.smallest_class, report.share_below_k) == (0, 0, 0, 0.0)
    assert report.smallest_l == 0 and report.share_below_l == 0.0


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="quasi-identifier"):
        assess(RECORDS, [])
    with pytest.raises(ValueError, match="at least 1"):
        assess(RECORDS, QI, k=0)


def test_reports_hold_figures_never_record_values() -> None:
    report = assess(RECORDS, QI, k=3, sensitive="rating")
    table = format_table(report, undecodable=2)
    assert "DE" not in table and "30-39" not in table
    assert "62.50%" in table and "2 undecodable" in table
    as_json = json.dumps(report.as_dict())
    assert "DE" not in as_json and "30-39" not in as_json
