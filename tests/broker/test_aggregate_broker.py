"""The aggregate job on the real broker: sanitized records in, noisy suppressed aggregates out, once."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path
from typing import Any

import fastavro
import pytest
import yaml
from click.testing import CliRunner
from kafkatools import Framer, create_topics, delete_topics, produce, read_all, unique

from stream_anon.aggregate import AGGREGATE_SCHEMA, AggregateMetrics, Ledger, Limits, aggregate_settings
from stream_anon.aggregate.job import PublishFailed
from stream_anon.aggregate.record import PARSED_AGGREGATE_SCHEMA
from stream_anon.app import aggregate_job
from stream_anon.cli.analytics import aggregate, risk
from stream_anon.config import load_settings
from stream_anon.health import Health
from stream_anon.kafka.errors import FatalKafkaError
from stream_anon.risk import assess
from stream_anon.schemas import fingerprint
from stream_anon.wire import SINGLE_OBJECT_MAGIC

pytestmark = pytest.mark.broker

DAY = 86_400_000
SANITIZED_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "FeedbackSanitized",
    "namespace": "test.aggregate",
    "fields": [
        {
            "name": "user",
            "type": {"type": "record", "name": "User", "fields": [{"name": "user_id", "type": "string"}]},
        },
        {"name": "country", "type": "string"},
        {"name": "age_band", "type": "string"},
        {"name": "rating", "type": "int"},
        {"name": "submitted_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}


@pytest.fixture
def setup(broker: str, tmp_path: Path) -> Any:
    sanitized, aggregates = unique("agg-sanitized"), unique("agg-out")
    create_topics([sanitized], partitions=3)
    create_topics([aggregates], partitions=1)
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (schemas / "sanitized.avsc").write_text(json.dumps(SANITIZED_SCHEMA))
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "bootstrap_servers": broker,
                "input_topics": [unique("agg-raw")],
                "output_topic": sanitized,
                "schemas_dir": str(schemas),
                "log_format": "json",
                "aggregate": {
                    "aggregates_topic": aggregates,
                    "group_id": unique("agg-job"),
                    "window": "1d",
                    "allowed_lateness": "1h",
                    "event_time_field": "submitted_at",
                    "group_by": ["country"],
                    "user_field": "user.user_id",
                    "max_records_per_user": 2,
                    "epsilon": {"count": 1.0, "distinct_users": 0.5},
                    "numeric": {"rating": {"min": 1, "max": 5, "epsilon": 1.0}},
                    "suppress_below": 40,
                    "budget": {"per_window": 3.0, "lifetime": 30},
                    "ledger": "ledger.jsonl",
                    "metrics_port": 0,
                    "poll_timeout_s": 0.2,
                },
            }
        )
    )
    yield config, sanitized, aggregates
    delete_topics([sanitized, aggregates])


def feedback(user: str, country: str, day: int, rating: int, age: str = "30-39") -> dict[str, Any]:
    return {
        "user": {"user_id": user},
        "country": country,
        "age_band": age,
        "rating": rating,
        "submitted_at": day * DAY + 3_600_000,
    }


def population(day: int) -> list[dict[str, Any]]:
    records = [feedback(f"de-{i}", "DE", day, 4) for i in range(300)]
    records += [feedback(f"fr-{i}", "FR", day, 2, age="40-49") for i in range(150)]
    records += [feedback(f"lu-{i}", "LU", day, 5) for i in range(2)]  # too small to publish
    return records


def produce_records(topic: str, records: list[dict[str, Any]], extra: list[bytes] | None = None) -> None:
    framer = Framer(SANITIZED_SCHEMA)
    values = [(r["user"]["user_id"].encode(), framer(r)) for r in records]
    produce(topic, values + [(None, v) for v in extra or []])


def published(topic: str) -> list[dict[str, Any]]:
    header = SINGLE_OBJECT_MAGIC + fingerprint(AGGREGATE_SCHEMA)
    out = []
    for read in read_all(topic):
        assert read.value is not None and read.value[:10] == header
        out.append(fastavro.schemaless_reader(io.BytesIO(read.value[10:]), PARSED_AGGREGATE_SCHEMA, None))
    return out


def test_windows_are_published_once_noisy_bounded_and_suppressed(setup: Any) -> None:
    config, sanitized, aggregates = setup
    flood = [feedback("de-0", "DE", 0, 1) for _ in range(1000)]  # one user floods day 0
    # In event-time order within each partition: a flood of day 0 after day 1's records would sit a day
    # behind its partition's newest record, and be late whenever the other partitions were read first.
    produce_records(sanitized, population(0) + flood + population(1), extra=[b"\xc3\x01garbage!!"])
    produce_records(sanitized, [feedback(f"late-{i}", "DE", 3, 3) for i in range(5)])

    settings = load_settings(config)
    agg = aggregate_settings(settings, base_dir=config.parent)
    limits = Limits(agg.budget.per_window, agg.budget.per_window_delta, agg.budget.lifetime)
    metrics = AggregateMetrics()
    with Ledger(agg.ledger, limits) as ledger:
        # Day 3's records close days 0 and 1 by event time; day 3 itself closes when the job drains.
        aggregate_job(settings, agg, ledger, metrics).run(until_idle_s=4, close_open_windows=True)
        assert all(ledger.is_published(d * DAY) for d in (0, 1, 3))

    records = published(aggregates)
    by_window = {(r["window_start"], r["cohort"]["country"]): r for r in records}
    assert set(by_window) == {(0, "DE"), (0, "FR"), (DAY, "DE"), (DAY, "FR")}  # LU and day 3 suppressed
    # Day 0 DE: 300 users, the flooder bounded to 2 records (1 regular + 1 of the flood, or 2 of it).
    assert abs(by_window[(0, "DE")]["records"] - 301) < 40
    assert abs(by_window[(DAY, "DE")]["records"] - 300) < 40
    assert abs(by_window[(DAY, "FR")]["means"]["rating"] - 2) < 0.5
    assert all(r["epsilon"] == pytest.approx(2.5) and r["records"] >= 40 for r in records)
    r = metrics.registry
    assert r.get_sample_value("stream_anon_aggregate_skipped_records_total", {"reason": "undecodable"}) == 1
    assert r.get_sample_value("stream_anon_aggregate_windows_published_total") == 3
    assert r.get_sample_value("stream_anon_aggregate_late_records_total") == 0

    # A second run of the same job finds its offsets committed: nothing is published twice.
    result = CliRunner().invoke(
        aggregate, ["--config", str(config), "--until-idle", "3", "--close-open-windows"]
    )
    assert result.exit_code == 0, result.output
    assert len(published(aggregates)) == len(records)

    # New data for day 5, and a straggler for the published day 1, which is skipped: day 5 is published.
    produce_records(sanitized, [feedback(f"d5-{i}", "FR", 5, 3) for i in range(200)])
    produce_records(sanitized, [feedback("straggler", "DE", 1, 3)])
    result = CliRunner().invoke(
        aggregate, ["--config", str(config), "--until-idle", "3", "--close-open-windows"]
    )
    assert result.exit_code == 0, result.output
    after = published(aggregates)
    assert len(after) == len(records) + 1
    assert (after[-1]["window_start"], after[-1]["cohort"]) == (5 * DAY, {"country": "FR"})


def test_a_lost_ledger_is_detected_before_anything_is_spent_again(setup: Any, tmp_path: Path) -> None:
    config, sanitized, aggregates = setup
    produce_records(sanitized, population(0))
    args = ["--config", str(config), "--until-idle", "3", "--close-open-windows"]
    assert CliRunner().invoke(aggregate, args).exit_code == 0
    assert published(aggregates)
    (config.parent / "ledger.jsonl").unlink()
    result = CliRunner().invoke(aggregate, args)
    assert result.exit_code == 2
    assert "ledger" in result.output and "already holds aggregates" in result.output


def test_a_lost_ledger_is_detected_when_every_cohort_was_suppressed(setup: Any) -> None:
    """Nothing reached the aggregates topic, yet the windows spent budget: the committed offsets say so."""
    config, sanitized, aggregates = setup
    produce_records(sanitized, [feedback(f"lu-{i}", "LU", 0, 5) for i in range(3)])
    produce_records(sanitized, [feedback(f"lu-{i}", "LU", 2, 5) for i in range(3)])
    args = ["--config", str(config), "--until-idle", "3", "--close-open-windows"]
    assert CliRunner().invoke(aggregate, args).exit_code == 0
    assert published(aggregates) == []  # every cohort suppressed
    (config.parent / "ledger.jsonl").unlink()
    result = CliRunner().invoke(aggregate, args)
    assert result.exit_code == 2
    assert "holds 0 charged window(s)" in result.output and "committed offsets record 2" in result.output


def test_risk_reports_k_anonymity_of_the_topic(setup: Any) -> None:
    config, sanitized, _ = setup
    records = population(0)
    produce_records(sanitized, records, extra=[b"not avro"])
    result = CliRunner().invoke(
        risk,
        [
            "--config",
            str(config),
            "--topic",
            sanitized,
            "--quasi-identifiers",
            "country,age_band",
            "--sensitive",
            "rating",
            "--person",
            "user.user_id",
            "--k",
            "5",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    expected = assess(records, ["country", "age_band"], k=5, sensitive="rating", person="user.user_id")
    assert report == {**expected.as_dict(), "undecodable": 1}
    assert (report["records"], report["smallest_class"], report["records_below_k"]) == (452, 2, 2)
    assert report["people"] == 452
    # The table reads a bounded window and shows no values.
    table = CliRunner().invoke(
        risk,
        [
            "--config",
            str(config),
            "--topic",
            sanitized,
            "--quasi-identifiers",
            "country",
            "--max-records",
            "100",
        ],
    )
    assert table.exit_code == 0, table.output
    assert "records read" in table.stdout and "100" in table.stdout and "DE" not in table.stdout


def test_a_second_instance_fences_the_first_so_one_process_publishes(setup: Any, tmp_path: Path) -> None:
    """Two instances of one job (as on two hosts, each with its own ledger file): the fixed transactional
    id lets only the newer one publish; the older one stops at its first transaction."""
    config, sanitized, aggregates = setup
    settings = load_settings(config)
    agg = aggregate_settings(settings, base_dir=config.parent)
    limits = Limits(agg.budget.per_window, agg.budget.per_window_delta, agg.budget.lifetime)
    errors: dict[str, Exception] = {}

    def run(name: str, health: Health) -> None:
        with Ledger(tmp_path / f"ledger-{name}.jsonl", limits) as ledger:
            try:
                aggregate_job(settings, agg, ledger, health=health).run(
                    until_idle_s=6, close_open_windows=True
                )
            except FatalKafkaError as exc:
                errors[name] = exc

    threads = []
    for name in ("old", "new"):
        health = Health()
        thread = threading.Thread(target=run, args=(name, health))
        thread.start()
        threads.append(thread)
        for _ in range(300):  # ready once its transactions are initialised and partitions assigned
            if health.readiness()[0] or not thread.is_alive():
                break
            threading.Event().wait(0.1)
    produce_records(sanitized, population(0) + population(2))
    for thread in threads:
        thread.join(120)
    assert set(errors) == {"old"}
    assert isinstance(errors["old"], PublishFailed)
    assert "publishing aggregates failed" in str(errors["old"])
    windows = sorted((r["window_start"], r["cohort"]["country"]) for r in published(aggregates))
    assert windows == [(0, "DE"), (0, "FR"), (2 * DAY, "DE"), (2 * DAY, "FR")]


def test_one_ledger_serves_one_running_job(setup: Any) -> None:
    config, _, _ = setup
    settings = load_settings(config)
    agg = aggregate_settings(settings, base_dir=config.parent)
    with Ledger(agg.ledger, Limits(3.0, 1e-6, 30.0)):
        result = CliRunner().invoke(aggregate, ["--config", str(config), "--until-idle", "1"])
    assert result.exit_code == 2
    assert "locked by another process" in result.output
