"""``stream-anon acls``: the least-privilege ACLs of a worker with this configuration, of a reader, and
of the dead-letter replay."""

from __future__ import annotations

from pathlib import Path

import click

from stream_anon.acls import (
    DEFAULT_READER_GROUP_PREFIX,
    DEFAULT_READER_PRINCIPAL,
    DEFAULT_WORKER_PRINCIPAL,
    as_json,
    as_kafka_acls_commands,
    reader_acls,
    replay_acls,
    worker_acls,
)
from stream_anon.cli.run import fail, settings_from


@click.command()
@click.option(
    "--config",
    "config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The worker's YAML configuration (topics, group, delivery, transactional id).",
)
@click.option(
    "--principal",
    default=DEFAULT_WORKER_PRINCIPAL,
    show_default=True,
    metavar="User:NAME",
    help="The worker's Kafka principal.",
)
@click.option(
    "--reader-principal",
    default=DEFAULT_READER_PRINCIPAL,
    show_default=True,
    metavar="User:NAME",
    help="An analytics reader of the sanitized topic (read-only); pass an empty value to leave it out.",
)
@click.option(
    "--reader-group-prefix",
    default=DEFAULT_READER_GROUP_PREFIX,
    show_default=True,
    help="Consumer group ids the reader may use, by prefix.",
)
@click.option(
    "--replay-principal",
    default="",
    metavar="User:NAME",
    help="Who runs `stream-anon dlq replay`: read the dead-letter topic, write the input topics. "
    "Not the worker's principal. Empty (the default): left out.",
)
@click.option(
    "--replay-group",
    metavar="GROUP",
    help="The replay's group and transactional id, as `dlq replay --group`. Default: <group_id>-dlq-replay.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["kafka-acls", "json"]),
    default="kafka-acls",
    show_default=True,
    help="kafka-acls: commands for kafka-acls.sh ($BOOTSTRAP, $ADMIN_CONFIG); json: one object per ACL.",
)
def acls(
    config: Path | None,
    principal: str,
    reader_principal: str,
    reader_group_prefix: str,
    replay_principal: str,
    replay_group: str | None,
    output_format: str,
) -> None:
    """Print the exact ACLs a worker with this configuration needs, a reader's read-only set, and (with
    --replay-principal) what `stream-anon dlq replay` needs.

    Everything else stays denied on a cluster whose authorizer denies where no ACL matches. The worker
    checks at start-up that it holds its topic and group rights and names any that is missing.
    docs/security.md explains each entry.
    """
    from stream_anon.dlq.replay import replay_group as default_replay_group

    settings = settings_from(config)
    group = replay_group or default_replay_group(settings)
    try:
        entries = worker_acls(settings, principal)
        if replay_principal:
            if replay_principal == principal:
                raise ValueError(
                    f"the replay principal {replay_principal} is the worker's: it would let the worker "
                    "write the raw topics; run the replay as a principal of its own"
                )
            if group == settings.group_id:
                raise ValueError(f"the replay group {group!r} is the worker's group: choose another")
            entries += replay_acls(settings, replay_principal, group)
        if reader_principal:
            entries += reader_acls(
                settings, reader_principal, reader_group_prefix, group if replay_principal else None
            )
    except ValueError as exc:
        fail(str(exc))
        return
    text = as_json(entries) + "\n" if output_format == "json" else as_kafka_acls_commands(entries)
    click.echo(text, nl=False)
