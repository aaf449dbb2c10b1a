"""Windows close on event time with allowed lateness; each user's contribution to a window is bounded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from stream_anon.aggregate import Added, AggregateMetrics, AggregateSettings, WindowedAggregation

HOUR = 3_600_000
DAY = 24 * HOUR


def settings(**overrides: Any) -> AggregateSettings:
    values: dict[str, Any] = {
        "window": "1d",
        "allowed_lateness": "1h",
        "event_time_field": "submitted_at",
        "group_by": ["country"],
        "user_field": "user.user_id",
        "max_records_per_user": 3,
        "epsilon": {"count": 0.5, "distinct_users": 0.5},
        "numeric": {"rating": {"min": 1, "max": 5, "epsilon": 0.5}},
        "suppress_below": 0,
        "budget": {"per_window": 2, "lifetime": 20},
        "ledger": Path("unused.jsonl"),
    }
    values.update(overrides)
    return AggregateSettings.model_validate(values)


def rec(user: str, country: str | None, at_ms: int, rating: Any = 4) -> dict[str, Any]:
    return {"user": {"user_id": user}, "country": country, "submitted_at": at_ms, "rating": rating}


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_one_user_flooding_a_window_counts_as_at_most_k_records() -> None:
    agg = WindowedAggregation(settings())
    for i in range(20):
        agg.add(rec(f"user-{i}", "DE", 1000 + i, rating=3))
    for i in range(5000):
        agg.add(rec("flooder", "DE", 2000 + i, rating=99))  # also out of bounds: clamped to 5
    [window] = agg.close_ready(close_all=True)
    de = window.cohorts[("DE",)]
    assert de.records == 20 + 3
    assert de.users == 21
    assert de.sums == (20 * 3 + 3 * 5.0,)
    assert window.records_seen == 5020 and window.records_kept == 23


def test_a_flood_spread_over_many_cohorts_still_adds_at_most_k_records_and_k_cohorts() -> None:
    agg = WindowedAggregation(settings())
    for i in range(1000):
        agg.add(rec("flooder", f"country-{i % 50}", 1000 + i))
    [window] = agg.close_ready(close_all=True)
    assert sum(stats.records for stats in window.cohorts.values()) == 3
    assert sum(stats.users for stats in window.cohorts.values()) <= 3
    assert len(window.cohorts) <= 3


def test_bounding_keeps_a_sample_not_just_the_first_records_and_is_reproducible() -> None:
    def kept_countries(seed: int) -> set[str | None]:
        agg = WindowedAggregation(settings(bounding_seed=seed))
        for i in range(300):
            agg.add(rec("flooder", f"c{i}", 1000 + i))
        [window] = agg.close_ready(close_all=True)
        return {cohort[0] for cohort in window.cohorts}

    first = kept_countries(seed=1)
    assert first == kept_countries(seed=1)
    assert first != {"c0", "c1", "c2"}
    # Over many seeds the kept records are spread over the whole flood (reservoir, uniform).
    positions = [int(c[1:]) for seed in range(40) for c in kept_countries(seed) if c is not None]
    assert len(positions) == 120
    assert 100 < sum(positions) / len(positions) < 200  # uniform over 0..299 has mean 149.5


def test_a_flooding_user_does_not_change_what_other_users_contribute() -> None:
    def de_without_flooder(flood: int) -> tuple[int, int, tuple[float, ...]]:
        agg = WindowedAggregation(settings())
        for i in range(10):
            for j in range(5):
                agg.add(rec(f"user-{i}", "DE", 1000 + i * 10 + j, rating=j + 1))
        for j in range(flood):
            agg.add(rec("flooder", "FR", 5000 + j))
        [window] = agg.close_ready(close_all=True)
        de = window.cohorts[("DE",)]
        return de.records, de.users, de.sums

    assert de_without_flooder(0) == de_without_flooder(10_000)


def test_records_go_to_the_tumbling_window_of_their_event_time() -> None:
    agg = WindowedAggregation(settings())
    agg.add(rec("a", "DE", DAY + 5))
    agg.add(rec("b", "DE", 2 * DAY - 1))
    agg.add(rec("c", "DE", 2 * DAY))
    windows = agg.close_ready(close_all=True)
    assert [(w.start_ms, w.end_ms, w.records_kept) for w in windows] == [
        (DAY, 2 * DAY, 2),
        (2 * DAY, 3 * DAY, 1),
    ]


def test_a_window_closes_when_event_time_passes_its_end_plus_the_allowed_lateness() -> None:
    agg = WindowedAggregation(settings())
    agg.add(rec("a", "DE", DAY + HOUR))
    agg.add(rec("b", "DE", 2 * DAY + 30 * 60_000))  # next window, within the lateness of the first
    assert agg.close_ready() == []
    agg.add(rec("c", "DE", DAY + 2 * HOUR))  # late but allowed: the first window is still open
    agg.add(rec("d", "DE", 2 * DAY + HOUR))  # watermark reaches the first window's end
    [closed] = agg.close_ready()
    assert (closed.start_ms, closed.records_kept) == (DAY, 2)
    assert agg.watermark_ms == 2 * DAY


def test_records_later_than_the_allowed_lateness_are_dropped_and_counted() -> None:
    metrics = AggregateMetrics()
    agg = WindowedAggregation(settings(), metrics)
    agg.add(rec("a", "DE", DAY + HOUR))
    agg.add(rec("b", "DE", 2 * DAY + 2 * HOUR))
    [first] = agg.close_ready()
    assert agg.add(rec("late", "DE", DAY + 3 * HOUR)) is Added.LATE
    assert agg.add(rec("late2", "FR", 5)) is Added.LATE
    assert sample(metrics.registry, "stream_anon_aggregate_late_records_total") == 2
    [second] = agg.close_ready(close_all=True)
    assert first.records_kept == 1 and second.records_kept == 1


def test_records_without_user_time_or_a_usable_value_are_skipped_with_a_reason() -> None:
    metrics = AggregateMetrics()
    agg = WindowedAggregation(settings(), metrics)
    assert agg.add({"country": "DE", "submitted_at": 5, "rating": 3}) is Added.SKIPPED
    assert agg.add(rec("a", "DE", 5) | {"submitted_at": None}) is Added.SKIPPED
    assert agg.add(rec("a", "DE", 5, rating="five")) is Added.SKIPPED
    assert agg.add(rec("a", "DE", 5, rating=None)) is Added.ACCEPTED  # imputed with the midpoint
    assert agg.add(rec("b", None, 5)) is Added.ACCEPTED  # a null grouping value is a cohort of its own
    r = metrics.registry
    assert sample(r, "stream_anon_aggregate_skipped_records_total", reason="missing_user") == 1
    assert sample(r, "stream_anon_aggregate_skipped_records_total", reason="missing_event_time") == 1
    assert sample(r, "stream_anon_aggregate_skipped_records_total", reason="bad_value") == 1
    [window] = agg.close_ready(close_all=True)
    assert window.cohorts[("DE",)].sums == (3.0,)
    assert (None,) in window.cohorts


def test_known_cohort_values_reject_records_outside_them() -> None:
    metrics = AggregateMetrics()
    agg = WindowedAggregation(settings(cohort_values={"country": ["DE", "FR"]}), metrics)
    assert agg.add(rec("a", "DE", 5)) is Added.ACCEPTED
    assert agg.add(rec("a", "XX", 5)) is Added.SKIPPED
    assert (
        sample(metrics.registry, "stream_anon_aggregate_skipped_records_total", reason="unknown_cohort") == 1
    )


def test_without_an_event_time_field_the_kafka_timestamp_is_the_event_time() -> None:
    agg = WindowedAggregation(settings(event_time_field=None))
    assert agg.add(rec("a", "DE", 0), timestamp_ms=3 * DAY + 7) is Added.ACCEPTED
    [window] = agg.close_ready(close_all=True)
    assert window.start_ms == 3 * DAY


def test_committable_offsets_stop_at_the_first_record_of_an_open_window() -> None:
    agg = WindowedAggregation(settings())
    p0, p1 = ("t", 0), ("t", 1)
    agg.add(rec("a", "DE", DAY + 1), position=p0, offset=10)
    agg.add(rec("b", "DE", 2 * DAY + 2 * HOUR), position=p0, offset=11)
    agg.add(rec("c", "DE", DAY + 2), position=p1, offset=40)
    assert agg.committable_offsets() == {p0: 10, p1: 40}
    agg.add(rec("d", "DE", 2 * DAY + 2 * HOUR), position=p1, offset=41)  # both partitions past day 1
    [closed] = agg.close_ready()
    assert closed.start_ms == DAY
    assert agg.committable_offsets() == {p0: 11, p1: 41}
    agg.close_ready(close_all=True)
    assert agg.committable_offsets() == {p0: 12, p1: 42}


def test_records_of_a_window_published_before_a_restart_are_skipped() -> None:
    metrics = AggregateMetrics()
    agg = WindowedAggregation(settings(), metrics, is_published=lambda start: start == DAY)
    assert agg.add(rec("a", "DE", DAY + 1)) is Added.SKIPPED
    assert agg.add(rec("a", "DE", 2 * DAY + 1)) is Added.ACCEPTED
    assert sample(metrics.registry, "stream_anon_aggregate_skipped_records_total", reason="replayed") == 1


def test_a_partition_replaying_a_backlog_holds_the_watermark_back() -> None:
    agg = WindowedAggregation(settings())
    ahead, behind = ("t", 0), ("t", 1)
    agg.expect([ahead, behind])
    agg.add(rec("a", "DE", 5 * DAY), position=ahead, offset=0)
    assert agg.close_ready() == [] and agg.watermark_ms is None  # nothing heard from the other yet
    agg.add(rec("b", "DE", DAY + 5), position=behind, offset=0)
    agg.close_ready()
    assert agg.watermark_ms == DAY + 5 - HOUR
    # The lagging partition's next record is on time although another partition is days ahead.
    assert agg.add(rec("c", "DE", DAY + 6), position=behind, offset=1) is Added.ACCEPTED
    agg.caught_up(behind)  # read to its end: it no longer holds the watermark
    closed = agg.close_ready()
    assert [w.start_ms for w in closed] == [DAY]
    assert agg.watermark_ms == 5 * DAY - HOUR
    assert agg.add(rec("d", "DE", DAY + 7), position=behind, offset=2) is Added.LATE


def test_the_watermark_never_moves_backwards() -> None:
    agg = WindowedAggregation(settings())
    agg.add(rec("a", "DE", 3 * DAY), position=("t", 0), offset=0)
    agg.close_ready()
    agg.add(rec("b", "DE", DAY), position=("t", 1), offset=0)  # a new partition, far behind
    agg.close_ready()
    assert agg.watermark_ms == 3 * DAY - HOUR


def test_sums_are_exact_so_one_user_moves_them_by_their_own_values_only() -> None:
    """A floating-point sum rounds differently with and without a record, by more than its value once
    sums are large (OpenDP's make_sum allows for it); the core sums whole grid steps, exactly."""
    import random

    from stream_anon.dp.mechanisms import grid_exponent, to_steps

    rng = random.Random(24)
    ratings = [1 + 4 * rng.random() for _ in range(3000)]
    records = [rec(f"u{i}", "DE", 0, r) for i, r in enumerate(ratings)]

    def closed(rs: list[dict[str, Any]]) -> Any:
        agg = WindowedAggregation(settings())
        for r in rs:
            agg.add(r)
        [window] = agg.close_ready(close_all=True)
        return window.cohorts[("DE",)]

    forward, backward = closed(records), closed(records[::-1])
    without = closed(records[1:])
    exponent = grid_exponent(5.0)
    assert forward.sum_steps == backward.sum_steps == (sum(to_steps(r, exponent) for r in ratings),)
    assert forward.sum_steps[0] - without.sum_steps[0] == to_steps(ratings[0], exponent)
    # the same values summed as floats depend on the order: the rounding the grid avoids
    assert sum(ratings) != sum(ratings[::-1]) or sum(ratings) != sum(sorted(ratings))
