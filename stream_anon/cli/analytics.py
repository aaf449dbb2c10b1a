"""``stream-anon aggregate`` (differentially private windowed aggregates) and ``stream-anon risk``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from stream_anon.config import ConfigError, Settings, load_settings


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _settings(config: Path) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        _fail(str(exc))
        raise  # unreachable


_CONFIG = click.option(
    "--config",
    "config",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML configuration file; every key can be overridden by STREAM_ANON_<KEY>.",
)


@click.command()
@_CONFIG
@click.option(
    "--until-idle",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Stop (exit 0) after this many seconds without input.",
)
@click.option(
    "--close-open-windows",
    is_flag=True,
    help="With --until-idle: publish every open window before stopping, without waiting for the "
    "watermark (backfills of a finished topic).",
)
def aggregate(config: Path, until_idle: float | None, close_open_windows: bool) -> None:
    """Publish differentially private windowed aggregates of the sanitized topic.

    Per tumbling event-time window and cohort (the `aggregate` section of the configuration): noisy
    counts of records and distinct users, noisy sums and means of bounded numeric fields; cohorts under
    the suppression threshold are left out, and a ledger keeps each person within `budget.lifetime`
    (their records are left out of later windows once it is spent). See docs/privacy.md. Exits 2 on
    a configuration, ledger or connectivity error, 1 when a publication fails (a restart publishes the
    same values).
    """
    from confluent_kafka import KafkaException

    from stream_anon.aggregate.job import PublishFailed
    from stream_anon.aggregate.ledger import Ledger, LedgerError, Limits
    from stream_anon.aggregate.metrics import AggregateMetrics
    from stream_anon.aggregate.settings import aggregate_settings
    from stream_anon.app import aggregate_job
    from stream_anon.health import Health, HealthServer
    from stream_anon.kafka.errors import FatalKafkaError
    from stream_anon.keys import KeysError
    from stream_anon.logs import configure_logging
    from stream_anon.registry import RegistryError

    settings = _settings(config)
    try:
        agg = aggregate_settings(settings, base_dir=config.parent)
    except ConfigError as exc:
        _fail(str(exc))
        return
    configure_logging(settings.log_format, settings.log_level)
    metrics = AggregateMetrics()
    health = Health(stall_timeout_s=settings.stall_timeout_s)
    server = HealthServer(health, metrics.registry, port=agg.metrics_port) if agg.metrics_port else None
    limits = Limits(agg.budget.per_window, agg.budget.per_window_delta, agg.budget.lifetime)
    try:
        if server is not None:
            server.start()
        with Ledger(agg.ledger, limits) as ledger:
            job = aggregate_job(settings, agg, ledger, metrics, health)
            job.install_signal_handlers()
            job.run(until_idle_s=until_idle, close_open_windows=close_open_windows)
    except (PublishFailed, RegistryError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except (ConfigError, LedgerError, FatalKafkaError, KeysError, FileNotFoundError, PermissionError) as exc:
        _fail(str(exc))
    except KafkaException as exc:
        _fail(f"Kafka: {exc.args[0].str()}")
    finally:
        if server is not None:
            server.stop()


@click.command()
@_CONFIG
@click.option("--topic", required=True, help="The topic to assess (usually the sanitized topic).")
@click.option(
    "--quasi-identifiers",
    "quasi",
    required=True,
    metavar="FIELD,...",
    help="Comma-separated dotted field paths an adversary may know (country,age,postal_code).",
)
@click.option("--sensitive", default=None, metavar="FIELD", help="Field whose l-diversity is reported.")
@click.option(
    "--person",
    default=None,
    metavar="FIELD",
    help="Field telling people apart (the user pseudonym): k counts distinct people, not records.",
)
@click.option("--k", "k", type=click.IntRange(1), default=5, show_default=True, help="k-anonymity target.")
@click.option("--l", "l_", type=click.IntRange(1), default=2, show_default=True, help="l-diversity target.")
@click.option(
    "--max-records",
    type=click.IntRange(1),
    default=100_000,
    show_default=True,
    help="Read at most this many records from the beginning of the topic.",
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def risk(
    config: Path,
    topic: str,
    quasi: str,
    sensitive: str | None,
    person: str | None,
    k: int,
    l_: int,
    max_records: int,
    fmt: str,
) -> None:
    """Report k-anonymity and l-diversity of a window of a topic, to tune generalization.

    Groups the records read into classes by their quasi-identifier values; shows the smallest class (in
    distinct people with --person, else records), the share of records in classes smaller than --k, and
    with --sensitive the fewest distinct sensitive values in a class (nulls do not count) and the share
    of records in classes with fewer than --l. Prints figures only, never a record's values.
    """
    from confluent_kafka import KafkaException

    from stream_anon.app import sanitized_reader
    from stream_anon.logs import configure_logging
    from stream_anon.registry import RegistryUnavailable
    from stream_anon.risk import TopicWindow, assess, format_table, read_topic

    settings = _settings(config)
    configure_logging(settings.log_format, settings.log_level)  # to stderr: stdout holds the report
    fields = [f.strip() for f in quasi.split(",") if f.strip()]
    if not fields:
        _fail("--quasi-identifiers needs at least one field")
    try:
        reader = sanitized_reader(settings)
        stats = TopicWindow()
        records = read_topic(settings.librdkafka(), topic, reader.read, max_records, stats)
        report = assess(records, fields, k=k, sensitive=sensitive, l=l_, person=person)
    except (LookupError, OSError, KafkaException, RegistryUnavailable, ConfigError) as exc:
        _fail(str(exc))
        return
    if fmt == "json":
        click.echo(json.dumps({**report.as_dict(), "undecodable": stats.undecodable}, indent=2))
    else:
        click.echo(format_table(report, stats.undecodable))
