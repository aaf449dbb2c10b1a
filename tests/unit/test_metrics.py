"""Metrics: names follow Prometheus conventions, each method moves the right series, lag comes from stats."""

from __future__ import annotations

import json
import re

import pytest
from prometheus_client import generate_latest

from stream_anon import __version__
from stream_anon.metrics import Metrics, Stage
from stream_anon.records import Reason


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def exposition(metrics: Metrics) -> str:
    return generate_latest(metrics.registry).decode()


def test_counters_count_by_their_labels(metrics: Metrics) -> None:
    metrics.consumed("feedback.raw", 500)
    metrics.consumed("feedback.raw", 20)
    metrics.produced("feedback.sanitized", 510)
    metrics.dead_lettered("feedback.raw", Reason.LEAK_DETECTED)
    metrics.dead_lettered("feedback.raw", "undecodable", 9)
    metrics.leak("EMAIL_ADDRESS", "comment")
    metrics.scan_entities("PERSON", 3)
    metrics.transaction(committed=True)
    metrics.transaction(committed=False)
    metrics.plan_compiled()

    assert value(metrics, "stream_anon_records_consumed_total", topic="feedback.raw") == 520
    assert value(metrics, "stream_anon_records_produced_total", topic="feedback.sanitized") == 510
    assert (
        value(
            metrics, "stream_anon_records_dead_lettered_total", topic="feedback.raw", reason="leak_detected"
        )
        == 1
    )
    assert (
        value(metrics, "stream_anon_records_dead_lettered_total", topic="feedback.raw", reason="undecodable")
        == 9
    )
    assert value(metrics, "stream_anon_leaks_detected_total", entity="EMAIL_ADDRESS", path="comment") == 1
    assert value(metrics, "stream_anon_scan_entities_total", entity="PERSON") == 3
    assert value(metrics, "stream_anon_transactions_total", outcome="committed") == 1
    assert value(metrics, "stream_anon_transactions_total", outcome="aborted") == 1
    assert value(metrics, "stream_anon_plans_compiled_total") == 1


def test_reasons_and_stages_outside_their_lists_are_refused(metrics: Metrics) -> None:
    # A label made from anything else could grow without bound (or carry a value).
    with pytest.raises(ValueError):
        metrics.dead_lettered("feedback.raw", "jane@example.com")
    with pytest.raises(ValueError):
        metrics.observe_stage("parse-jane@example.com", 0.1)


def test_stage_timer_observes_the_block_even_when_it_raises(metrics: Metrics) -> None:
    with metrics.stage_seconds(Stage.VERIFY):
        pass
    with pytest.raises(RuntimeError), metrics.stage_seconds("commit"):
        raise RuntimeError("broker gone")
    metrics.observe_stage(Stage.TRANSFORM, 0.003)
    assert value(metrics, "stream_anon_stage_duration_seconds_count", stage="verify") == 1
    assert value(metrics, "stream_anon_stage_duration_seconds_count", stage="commit") == 1
    assert value(metrics, "stream_anon_stage_duration_seconds_sum", stage="transform") == pytest.approx(0.003)
    assert value(metrics, "stream_anon_stage_duration_seconds_bucket", stage="transform", le="0.005") == 1
    assert value(metrics, "stream_anon_stage_duration_seconds_bucket", stage="transform", le="0.0025") == 0


def test_batch_sizes_and_end_to_end_lag_are_histograms(metrics: Metrics) -> None:
    metrics.batch_size(500)
    metrics.batch_size(3)
    metrics.end_to_end_lag(0.2)
    now = 1_700_000_100.0
    metrics.end_to_end_lags([1_700_000_099_000, 1_700_000_040_000, -1], now=now)  # 1 s, 60 s, no timestamp
    assert value(metrics, "stream_anon_batch_size_records_count") == 2
    assert value(metrics, "stream_anon_batch_size_records_sum") == 503
    assert value(metrics, "stream_anon_end_to_end_lag_seconds_count") == 3
    assert value(metrics, "stream_anon_end_to_end_lag_seconds_sum") == pytest.approx(61.2)
    assert value(metrics, "stream_anon_last_batch_timestamp_seconds") > 0  # type: ignore[operator]


def stats(partitions: dict[str, int]) -> str:
    # The shape of librdkafka's statistics JSON, trimmed to what matters here.
    return json.dumps(
        {
            "name": "rdkafka#consumer-1",
            "type": "consumer",
            "topics": {
                "feedback.raw": {
                    "topic": "feedback.raw",
                    "partitions": {
                        "-1": {"partition": -1, "consumer_lag": -1},
                        **{p: {"partition": int(p), "consumer_lag": lag} for p, lag in partitions.items()},
                    },
                }
            },
        }
    )


def test_consumer_lag_per_partition_follows_the_statistics(metrics: Metrics) -> None:
    metrics.on_stats(stats({"0": 120, "1": 0, "2": -1}))
    assert value(metrics, "stream_anon_consumer_lag_records", topic="feedback.raw", partition="0") == 120
    assert value(metrics, "stream_anon_consumer_lag_records", topic="feedback.raw", partition="1") == 0
    assert value(metrics, "stream_anon_consumer_lag_records", topic="feedback.raw", partition="2") is None
    assert value(metrics, "stream_anon_consumer_lag_records", topic="feedback.raw", partition="-1") is None

    metrics.on_stats(stats({"1": 7}))  # partition 0 was revoked
    assert value(metrics, "stream_anon_consumer_lag_records", topic="feedback.raw", partition="0") is None
    assert value(metrics, "stream_anon_consumer_lag_records", topic="feedback.raw", partition="1") == 7


def test_consumer_lag_counts_from_the_offsets_committed_in_transactions(metrics: Metrics) -> None:
    """librdkafka's committed offset is the one fetched at assignment; the worker's commits are newer."""
    partition = {"partition": 0, "hi_offset": 500, "committed_offset": 300, "consumer_lag": 200}
    report = json.dumps({"topics": {"t": {"partitions": {"0": partition}}}})
    metrics.on_stats(report)
    assert value(metrics, "stream_anon_consumer_lag_records", topic="t", partition="0") == 200
    metrics.committed({("t", 0): 480})
    metrics.on_stats(report)
    assert value(metrics, "stream_anon_consumer_lag_records", topic="t", partition="0") == 20
    metrics.committed({("t", 0): 500})
    metrics.on_stats(report)
    assert value(metrics, "stream_anon_consumer_lag_records", topic="t", partition="0") == 0


def test_malformed_statistics_are_ignored(metrics: Metrics) -> None:
    metrics.on_stats("not json")
    metrics.on_stats("[]")
    metrics.on_stats(json.dumps({"topics": {"t": {"partitions": {"0": {"consumer_lag": "many"}}}}}))
    assert "stream_anon_consumer_lag_records{" not in exposition(metrics)


def test_build_info_names_the_version(metrics: Metrics) -> None:
    assert value(metrics, "stream_anon_build_info", version=__version__, python=_python()) == 1


def _python() -> str:
    import platform

    return platform.python_version()


def test_every_metric_follows_prometheus_naming(metrics: Metrics) -> None:
    text = exposition(metrics)
    families = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE))
    assert families, "no metric families exposed"
    for name, kind in families.items():
        if name.startswith("process_"):  # prometheus-client's standard process metrics
            continue
        assert name.startswith("stream_anon_"), name
        if kind == "counter":
            assert f"{name}_total" in text or name.endswith("_total"), name
        if kind == "histogram":
            assert name.endswith(("_seconds", "_records")), name


def test_each_metrics_object_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.consumed("t", 5)
    assert value(second, "stream_anon_records_consumed_total", topic="t") is None


def test_every_metric_is_documented(metrics: Metrics) -> None:
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "metrics.md").read_text(encoding="utf-8")
    for family in metrics.registry.collect():
        if family.name.startswith("process_"):
            continue
        exposed = family.name + ("_total" if family.type == "counter" else "")
        exposed = exposed + "_info" if family.type == "info" else exposed
        assert f"`{exposed}`" in doc, f"{exposed} is not in docs/metrics.md"


def exposed_names(metrics: Metrics) -> set[str]:
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "info": ("_info",)}
    names = set()
    for family in metrics.registry.collect():
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
    return names


def test_the_grafana_dashboard_only_queries_metrics_that_exist(metrics: Metrics) -> None:
    from pathlib import Path

    dashboard = json.loads((Path(__file__).parents[2] / "deploy" / "grafana-dashboard.json").read_text())
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    referenced = {name for query in queries for name in re.findall(r"\b((?:stream_anon|process)_\w+)", query)}
    assert {"stream_anon_records_produced_total", "stream_anon_consumer_lag_records"} <= referenced
    missing = referenced - exposed_names(metrics)
    assert not missing, f"the dashboard queries metrics no code exposes: {sorted(missing)}"
