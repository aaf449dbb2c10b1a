"""The ``stream-anon`` command: one module per group of subcommands, joined here."""

from __future__ import annotations

import click

from stream_anon import __version__
from stream_anon.cli.acls import acls
from stream_anon.cli.analytics import aggregate, risk
from stream_anon.cli.audit import audit
from stream_anon.cli.demo import demo
from stream_anon.cli.dlq import dlq
from stream_anon.cli.rules import catalog, detokenize_command, keys, lint, schemas
from stream_anon.cli.run import anonymize, run


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="stream-anon")
def main() -> None:
    """Streaming PII anonymizer for Apache Kafka.

    Reads raw Avro topics, applies the anonymization rules written as annotations on the schema's
    fields, verifies every record before it leaves, and publishes sanitized records exactly once.
    Records that cannot be sanitized go to a dead-letter topic with the reason.
    """


main.add_command(run)
main.add_command(anonymize)
main.add_command(demo)
main.add_command(audit)
main.add_command(dlq)
for command in (lint, catalog, schemas, keys, detokenize_command, aggregate, risk, acls):
    main.add_command(command)
