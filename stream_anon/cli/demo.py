"""``stream-anon demo``: the end-to-end demo on the embedded default (schemas directory, local broker),
or through a Schema Registry (``--registry``)."""

from __future__ import annotations

import os
from pathlib import Path

import click


@click.group(invoke_without_command=True)
@click.option(
    "--bootstrap-servers",
    envvar="STREAM_ANON_BOOTSTRAP_SERVERS",
    default="127.0.0.1:9092",
    show_default=True,
    help="Kafka bootstrap servers.",
)
@click.option(
    "--count",
    type=click.IntRange(1, 1_000_000),
    default=300,
    show_default=True,
    help="Feedback records to generate.",
)
@click.option(
    "--schemas-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default="schemas",
    show_default=True,
    help="Directory of annotated .avsc files.",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=".cache/demo",
    show_default=True,
    help="Where the demo keeps its generated keys file.",
)
@click.option(
    "--show",
    type=click.IntRange(0, 100),
    default=3,
    show_default=True,
    help="Records to show raw next to sanitized.",
)
@click.option(
    "--registry",
    "registry_url",
    default=None,
    metavar="URL",
    help="Run through this Schema Registry (scripts/demo.sh --registry starts a local one): the producer "
    "registers feedback.avsc and writes Confluent framing, the worker reads writer schemas from the "
    "registry and registers the derived schema; the subjects are shown at the end.",
)
@click.pass_context
def demo(
    ctx: click.Context,
    bootstrap_servers: str,
    count: int,
    schemas_dir: Path,
    workdir: Path,
    show: int,
    registry_url: str | None,
) -> None:
    """Run the demo: generate feedback, sanitize it through the real broker, show raw next to sanitized.

    Creates fresh topics demo.feedback.raw, demo.feedback.sanitized and demo.feedback.dlq (3 partitions),
    produces COUNT generated records with PII in structured fields and free text plus a few malformed
    ones, runs the worker until the topic is drained, then prints a few records side by side and the
    counts: in, sanitized, dead-lettered by reason.
    """
    if ctx.invoked_subcommand is not None:
        return
    from stream_anon import demo as d
    from stream_anon.app import build_pipeline, load_keys
    from stream_anon.config import Settings
    from stream_anon.kafka.clients import check_topics
    from stream_anon.kafka.errors import FatalKafkaError
    from stream_anon.keys import Keys
    from stream_anon.logs import configure_logging
    from stream_anon.registry import RegistryClient, RegistryError
    from stream_anon.service import output_key_function
    from stream_anon.worker import Worker

    configure_logging("console", "warning")
    topics = d.DemoTopics("demo.feedback.raw", "demo.feedback.sanitized", "demo.feedback.dlq")
    workdir.mkdir(parents=True, exist_ok=True)
    keys_file = workdir / "keys.json"
    if not keys_file.exists():
        Keys.generate().save(keys_file)
    settings = Settings(
        bootstrap_servers=bootstrap_servers,
        group_id="stream-anon-demo",
        input_topics=[topics.raw],
        output_topic=topics.sanitized,
        dlq_topic=topics.dlq,
        # through a registry the worker needs no schemas directory: writer schemas come by id
        schemas_dir=None if registry_url else schemas_dir,
        schema_registry_url=registry_url,
        keys_file=keys_file,
        metrics_port=0,
        transactional_id=f"stream-anon-demo-{os.getpid()}",
    )
    schema = schemas_dir / "feedback.avsc"

    click.echo(
        f"[1/5] broker at {bootstrap_servers}"
        + (f", schema registry at {registry_url}" if registry_url else "")
    )
    try:
        check_topics(settings, timeout_s=20, topics=[])
        if registry_url:
            RegistryClient(registry_url).wait_until_answering(20)
    except (FatalKafkaError, RegistryError) as exc:
        raise click.ClickException(
            f"{exc} (start them with scripts/kafka.sh start and scripts/registry.sh start)"
        ) from None
    click.echo(f"[2/5] creating fresh topics {topics.raw}, {topics.sanitized}, {topics.dlq}")
    d.recreate_topics(bootstrap_servers, topics, partitions=3)
    d.forget_group(bootstrap_servers, settings.group_id)
    click.echo(
        f"[3/5] producing {count} generated feedback records and {len(d.malformed_records())} malformed ones"
    )
    header = d.register_raw_schema(registry_url, topics.raw, schema) if registry_url else None
    _, produced = d.produce_feedback(bootstrap_servers, topics.raw, schema, count, seed=7, header=header)
    click.echo("[4/5] running the worker until the raw topic is drained")
    keys = load_keys(settings.keys_file)
    pipeline = build_pipeline(settings, keys=keys)
    observer = d.CountingObserver()
    worker = Worker(settings, pipeline, observer, output_key=output_key_function(settings, keys))
    d.run_until_drained(worker, observer, produced)
    click.echo("[5/5] reading the sanitized and dead-letter topics back (read_committed)")
    raw = d.source_offsets(bootstrap_servers, topics.raw, schema, header)
    sanitized, reasons = d.report(settings, pipeline.resolver, raw, show)
    click.echo("")
    click.echo(
        f"in: {produced}   sanitized: {sanitized}   dead-lettered: {sum(reasons.values())}"
        + (f"  ({', '.join(f'{r}: {n}' for r, n in sorted(reasons.items()))})" if reasons else "")
    )
    if registry_url:
        click.echo("registered subjects: " + ", ".join(d.registered_subjects(registry_url, topics)))
    if sanitized + sum(reasons.values()) != produced:
        raise click.ClickException("counts do not add up: a record was lost or duplicated")


@demo.command("produce")
@click.option(
    "--bootstrap-servers", envvar="STREAM_ANON_BOOTSTRAP_SERVERS", default="127.0.0.1:9092", show_default=True
)
@click.option("--topic", default="feedback.raw", show_default=True)
@click.option("--count", type=click.IntRange(1, 10_000_000), default=500, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option(
    "--schema",
    "schema_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default="schemas/feedback.avsc",
    show_default=True,
)
@click.option(
    "--framing",
    type=click.Choice(["single_object", "confluent"]),
    default="single_object",
    show_default=True,
    help="confluent registers the schema and writes 00 + id framing.",
)
@click.option("--schema-registry-url", default=None, help="Needed with --framing confluent.")
def produce(
    bootstrap_servers: str,
    topic: str,
    count: int,
    seed: int,
    schema_path: Path,
    framing: str,
    schema_registry_url: str | None,
) -> None:
    """Produce generated feedback records to a raw topic (for the compose file and experiments)."""
    from stream_anon import demo as d
    from stream_anon.wire import Framing, frame_header

    header = None
    if framing == "confluent":
        if not schema_registry_url:
            raise click.UsageError("--framing confluent needs --schema-registry-url")
        from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

        client = SchemaRegistryClient({"url": schema_registry_url})
        schema_id = client.register_schema(f"{topic}-value", Schema(schema_path.read_text(), "AVRO"))
        header = frame_header(Framing.CONFLUENT, int(schema_id).to_bytes(4, "big"))
    _, produced = d.produce_feedback(bootstrap_servers, topic, schema_path, count, seed, header=header)
    click.echo(f"produced {produced} records to {topic}")
