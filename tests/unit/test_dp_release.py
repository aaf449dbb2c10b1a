"""A closed window becomes noisy, suppressed aggregate records, charged to the ledger before they leave."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import fastavro
import pytest

from stream_anon.aggregate import (
    AGGREGATE_SCHEMA,
    AggregateEncoder,
    AggregateMetrics,
    AggregateSettings,
    Ledger,
    Limits,
    Mechanisms,
    Releaser,
    WindowedAggregation,
    aggregate_settings,
)
from stream_anon.aggregate.record import PARSED_AGGREGATE_SCHEMA
from stream_anon.config import ConfigError, Settings
from stream_anon.schemas import fingerprint
from stream_anon.wire import SINGLE_OBJECT_MAGIC

DAY = 86_400_000


def settings(tmp_path: Path, **overrides: Any) -> AggregateSettings:
    values: dict[str, Any] = {
        "event_time_field": "submitted_at",
        "group_by": ["country"],
        "user_field": "user.user_id",
        "max_records_per_user": 2,
        "epsilon": {"count": 1.0, "distinct_users": 0.5},
        "numeric": {"rating": {"min": 1, "max": 5, "epsilon": 1.0}},
        "suppress_below": 40,
        "budget": {"per_window": 3, "per_window_delta": 1e-6, "lifetime": 100},
        "ledger": tmp_path / "ledger.jsonl",
    }
    values.update(overrides)
    return AggregateSettings.model_validate(values)


def limits(s: AggregateSettings) -> Limits:
    return Limits(s.budget.per_window, s.budget.per_window_delta, s.budget.lifetime)


def windowing(
    s: AggregateSettings, ledger: Ledger, metrics: AggregateMetrics | None = None
) -> WindowedAggregation:
    """The job's windowing core: persons are admitted to each window by the ledger as it closes."""
    return WindowedAggregation(s, metrics, admit=ledger.admitter(Mechanisms(s).window_spend.epsilon))


def fill(agg: WindowedAggregation, day: int, sizes: dict[str, int], rating: int = 4) -> None:
    for country, users in sizes.items():
        for u in range(users):
            agg.add(
                {
                    "user": {"user_id": f"{country}-{u}"},
                    "country": country,
                    "submitted_at": day * DAY + u,
                    "rating": rating,
                }
            )


def test_small_cohorts_are_suppressed_and_large_ones_published(tmp_path: Path) -> None:
    s = settings(tmp_path, budget={"per_window": 3, "per_window_delta": 1e-6, "lifetime": 250})
    days = 100
    with Ledger(s.ledger, limits(s)) as ledger:
        agg = windowing(s, ledger)
        for day in range(days):
            fill(agg, day, {"DE": 500, "FR": 3, "LU": 1})
        releaser = Releaser(s, Mechanisms(s), ledger)
        releases = [releaser.release(w) for w in agg.close_ready(close_all=True)]
    published = [r for release in releases if release is not None for r in release.records]
    assert len(releases) == days
    assert [r["cohort"] for r in published] == [{"country": "DE"}] * days
    assert all(r["records"] >= 40 for r in published)


def test_cohorts_of_a_single_user_stay_hidden_at_scale(tmp_path: Path) -> None:
    """delta bounds the chance a one-user cohort is published: 20,000 of them, none gets through."""
    s = settings(tmp_path)
    mech = Mechanisms(s)
    assert mech.window_spend.delta <= 1e-6
    released = mech.released_counts({f"solo-{i}": 2 for i in range(20_000)})
    assert released == {}


def test_suppress_below_too_low_for_the_delta_budget_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"raise suppress_below to at least (\d+)") as info:
        Mechanisms(settings(tmp_path, suppress_below=10))
    needed = int(info.value.args[0].split("at least ")[1].split(",")[0])
    assert Mechanisms(settings(tmp_path, suppress_below=needed)).window_spend.delta <= 1e-6
    with pytest.raises(ConfigError):
        Mechanisms(settings(tmp_path, suppress_below=needed - 1))


def test_known_cohorts_are_all_released_with_zeros_and_no_delta(tmp_path: Path) -> None:
    s = settings(tmp_path, suppress_below=0, cohort_values={"country": ["DE", "FR", "LU"]})
    with Ledger(s.ledger, limits(s)) as ledger:
        agg = windowing(s, ledger)
        fill(agg, 0, {"DE": 500})
        [window] = agg.close_ready(close_all=True)
        release = Releaser(s, Mechanisms(s), ledger).release(window)
        assert release is not None
        entry = ledger.window(0)
        assert entry is not None and entry.delta == 0.0
    published = {r["cohort"]["country"]: r for r in release.records}
    # FR and LU have no records: published when their noisy count reaches 0, as likely as not.
    assert "DE" in published and set(published) <= {"DE", "FR", "LU"}


def test_a_released_record_holds_noisy_figures_within_their_bounds(tmp_path: Path) -> None:
    s = settings(tmp_path)
    with Ledger(s.ledger, limits(s)) as ledger:
        agg = windowing(s, ledger)
        fill(agg, 0, {"DE": 2000}, rating=4)
        [window] = agg.close_ready(close_all=True)
        release = Releaser(s, Mechanisms(s), ledger).release(window)
    assert release is not None
    [record] = release.records
    assert abs(record["records"] - 2000) < 60  # scale 2: beyond 60 has probability ~1e-13
    assert 0 <= record["users"] <= record["records"]
    assert abs(record["sums"]["rating"] - 8000) < 600  # scale 10
    assert 1 <= record["means"]["rating"] <= 5 and abs(record["means"]["rating"] - 4) < 0.5
    assert record["figure_epsilon"] == pytest.approx({"records": 1.0, "users": 0.5, "sum.rating": 1.0})
    assert record["epsilon"] == pytest.approx(2.5) and 0 < record["delta"] <= 1e-6
    assert (record["window_start"], record["window_end"]) == (0, DAY)
    # The record fits schemas/aggregates.avsc, in single-object encoding.
    encoded = AggregateEncoder(SINGLE_OBJECT_MAGIC + fingerprint(AGGREGATE_SCHEMA))(record)
    assert encoded[:2] == SINGLE_OBJECT_MAGIC
    decoded = fastavro.schemaless_reader(io.BytesIO(encoded[10:]), PARSED_AGGREGATE_SCHEMA, None)
    assert decoded == record


def test_a_window_charged_but_not_published_is_published_again_with_the_same_noise(tmp_path: Path) -> None:
    s = settings(tmp_path)
    with Ledger(s.ledger, limits(s)) as ledger:
        agg = windowing(s, ledger)
        fill(agg, 0, {"DE": 500})
        [window] = agg.close_ready(close_all=True)
        first = Releaser(s, Mechanisms(s), ledger).release(window)
    with Ledger(s.ledger, limits(s)) as ledger:  # a crash before the transaction committed
        again = Releaser(s, Mechanisms(s), ledger).release(window)
        assert ledger.person_spent(agg.person_key("DE-0")) == pytest.approx(2.5)  # charged once
    assert first is not None and again is not None
    assert again.replayed and again.records == first.records


def test_a_person_out_of_lifetime_budget_is_left_out_and_every_cohort_still_published(tmp_path: Path) -> None:
    """Budgets are per person (issue 21): DE's users spend theirs in two windows and are left out of the
    third; FR's users arrive on day 2 and count. No cohort is dropped for lack of budget."""
    s = settings(tmp_path, budget={"per_window": 3, "lifetime": 5})  # two windows of 2.5 each
    metrics = AggregateMetrics()
    with Ledger(s.ledger, limits(s)) as ledger:
        agg = windowing(s, ledger, metrics)
        for day in range(3):
            fill(agg, day, {"DE": 500} if day < 2 else {"DE": 500, "FR": 500})
        windows = agg.close_ready(close_all=True)
        releaser = Releaser(s, Mechanisms(s), ledger, metrics)
        releases = [releaser.release(w) for w in windows]
        assert ledger.person_spent(agg.person_key("DE-0")) == pytest.approx(5.0)
        assert ledger.person_spent(agg.person_key("FR-0")) == pytest.approx(2.5)
    assert [len(w.persons) for w in windows] == [500, 500, 500]
    assert [w.persons_out_of_budget for w in windows] == [0, 0, 500]
    assert windows[2].cohorts.keys() == {("FR",)}  # DE's records left out with their persons
    countries = [sorted(r["cohort"]["country"] for r in rel.records) for rel in releases if rel is not None]
    assert countries == [["DE"], ["DE"], ["FR"]]
    sample = metrics.registry.get_sample_value
    assert sample("stream_anon_aggregate_persons_out_of_budget_total") == 500
    assert sample("stream_anon_aggregate_budget_refusals_total") == 0


def test_settings_come_from_the_aggregate_section(tmp_path: Path) -> None:
    section = {
        "window": "12h",
        "allowed_lateness": 90,
        "group_by": ["country"],
        "user_field": "user.user_id",
        "max_records_per_user": 3,
        "epsilon": {"count": 0.5, "distinct_users": 0.5},
        "suppress_below": 100,
        "budget": {"per_window": 1, "lifetime": 10},
        "ledger": "state/ledger.jsonl",
    }
    s = aggregate_settings(Settings(output_topic="feedback.sanitized", aggregate=section), base_dir=tmp_path)
    assert (s.window_ms, s.allowed_lateness_ms) == (12 * 3_600_000, 90_000)
    assert s.source_topic == "feedback.sanitized"
    assert s.ledger == tmp_path / "state" / "ledger.jsonl"
    assert s.effective_transactional_id == "stream-anon-aggregate"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"budget": {"per_window": 0.9, "lifetime": 10}}, "more than budget.per_window"),
        ({"budget": {"per_window": 1, "lifetime": 0.5}}, "below the epsilon of a single window"),
        ({"budget": {"per_window": 1}}, "aggregate.budget.lifetime"),
        ({"budget": {"per_window": 1, "per_user_group": 5}}, "per_user_group was replaced by lifetime"),
        ({"window": "1 fortnight"}, "aggregate.window"),
        ({"max_records_per_user": 0}, "aggregate.max_records_per_user"),
        ({"numeric": {"rating": {"min": 5, "max": 1, "epsilon": 1}}}, "min must be below max"),
        ({"cohort_values": {"city": ["x"]}}, "exactly the group_by fields"),
        ({"user_field": "country"}, "user_field"),
        ({"surprise": 1}, "aggregate.surprise"),
    ],
)
def test_bad_aggregate_settings_name_the_key(change: dict[str, Any], message: str) -> None:
    section: dict[str, Any] = {
        "group_by": ["country"],
        "user_field": "user.user_id",
        "max_records_per_user": 3,
        "epsilon": {"count": 0.5, "distinct_users": 0.5},
        "suppress_below": 100,
        "budget": {"per_window": 1, "lifetime": 10},
        "ledger": "ledger.jsonl",
    }
    section.update(change)
    with pytest.raises(ConfigError, match=message):
        aggregate_settings(Settings(aggregate=section))


def test_the_schema_file_is_the_schema_the_job_writes() -> None:
    import json

    path = Path(__file__).resolve().parents[2] / "schemas" / "aggregates.avsc"
    assert json.loads(path.read_text()) == AGGREGATE_SCHEMA
