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


def test_k_counts_distinct_people_when_a_person_field_is_declared() -> None:
    """Five records of one person are one person: k is 1, not 5 (issue 21)."""
    records = [{"country": "LU", "user": "anna", "rating": r} for r in (1, 2, 3, 4, 5)]
    records += [{"country": "DE", "user": f"u{i}", "rating": 4} for i in range(5)]
    by_records = assess(records, ["country"], k=2)
    by_people = assess(records, ["country"], k=2, person="user")
    assert by_records.smallest_class == 5 and by_records.records_below_k == 0
    assert by_people.smallest_class == 1 and by_people.people == 6
    assert (by_people.classes_below_k, by_people.records_below_k, by_people.unique_records) == (1, 5, 5)
    # a record without a person value is a person of its own, never merged with another
    anonymous = assess([{"country": "FR"}, {"country": "FR"}], ["country"], person="user")
    assert anonymous.smallest_class == 2 and anonymous.people == 2


def test_values_of_different_types_stay_in_different_classes() -> None:
    records = [{"flag": 1}, {"flag": 1.0}, {"flag": True}, {"flag": [1]}, {"flag": [1.0]}, {"flag": "1"}]
    report = assess(records, ["flag"])
    assert (report.classes, report.smallest_class) == (6, 1)
    assert assess([{"v": True, "s": 1}, {"v": True, "s": 1.0}], ["v"], sensitive="s").smallest_l == 2


def test_a_null_sensitive_value_does_not_count_toward_l() -> None:
    """A null says nothing about the value: {4, null} is one value, and all-null is l = 0."""
    records = [{"c": "DE", "s": 4}, {"c": "DE", "s": None}, {"c": "FR", "s": None}, {"c": "FR"}]
    report = assess(records, ["c"], sensitive="s", l=2)
    assert report.smallest_l == 0
    assert (report.classes_below_l, report.records_below_l) == (2, 4)
    assert assess(records[:2], ["c"], sensitive="s", l=1).classes_below_l == 0
