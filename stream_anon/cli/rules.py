"""Commands over annotated schemas and keys: lint, catalog, schemas derive/register, keys, detokenize."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from stream_anon.app import CompileOnlyScanner
from stream_anon.keys import Keys, KeysError
from stream_anon.rules import FieldRule, Plan, Problem, SchemaRulesError, TokenError, compile_plan, detokenize

if TYPE_CHECKING:
    from stream_anon.registry import RegistryClient, SubjectNameStrategy

SCHEMA_PATHS = click.Path(exists=True, path_type=Path)


def schema_files(paths: tuple[Path, ...]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(path.glob("*.avsc"))
        else:
            yield path


def load_schema(path: Path) -> dict[str, Any]:
    from stream_anon.schemas import parse_writer_schema

    return parse_writer_schema(path.read_text(encoding="utf-8"), ref=path.name).schema


def compile_file(path: Path, keys: Keys | None, tag_policy: dict[str, Any] | None = None) -> Plan:
    """The schema file's plan; every way it can fail is a ``SchemaRulesError`` with lint's problems, so
    lint goes on to the next file and derive and catalog answer as lint does, never with a traceback."""
    from stream_anon.wire import WireError

    try:
        # Without a keys file, lint checks rules against a throwaway key so hmac/tokenize still compile.
        return compile_plan(
            load_schema(path), keys or Keys.ephemeral(), tag_policy=tag_policy, scanner=CompileOnlyScanner()
        )
    except SchemaRulesError:
        raise
    except WireError as exc:
        raise SchemaRulesError([Problem("", exc.kind.value, str(exc))]) from None
    except Exception as exc:  # a bug in the compiler: still a message naming the schema, lint goes on
        raise SchemaRulesError([Problem("", "internal_error", f"{type(exc).__name__}: {exc}")]) from None


def problem_lines(path: Path, problems: list[Problem]) -> list[str]:
    return [f"{path}: {p.path or '(schema)'}: {p.code}: {p.message}" for p in problems]


def refuse(path: Path, exc: SchemaRulesError) -> NoReturn:
    """Stop a command on a schema lint refuses, with lint's lines."""
    for line in problem_lines(path, exc.problems):
        click.echo(line, err=True)
    click.echo("(stream-anon lint lists the problems of every schema)", err=True)
    sys.exit(1)


def _keys(path: Path | None) -> Keys | None:
    if path is None:
        return None
    try:
        return Keys.load(path)
    except KeysError as exc:
        raise click.ClickException(str(exc)) from None


KEYS_OPTION = click.option(
    "--keys",
    "keys_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Keys file; with it, rules naming a missing key are reported too.",
)


def registry_options(required: bool) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Where the derived schemas go: a configuration file (its registry, credentials, output topic and
    subject naming), or the URL and output topic given here (which win over the file)."""

    def add(command: Callable[..., None]) -> Callable[..., None]:
        for option in reversed(
            [
                click.option(
                    "--config",
                    "config_path",
                    type=click.Path(exists=True, dir_okay=False, path_type=Path),
                    help="The worker's configuration: schema_registry_url, schema_registry.*, output_topic.",
                ),
                click.option(
                    "--registry",
                    "registry_url",
                    help="Schema Registry URL (Apicurio: http://host:port/apis/ccompat/v7)"
                    + ("." if required else "; with it, each derived schema is checked against it."),
                ),
                click.option(
                    "--output-topic", help="The sanitized topic [default: the config's, or its default]."
                ),
            ]
        ):
            command = option(command)
        return command

    return add


@dataclass(frozen=True)
class RegistryTarget:
    """Where derived schemas go, and the tag policy they are derived with (as the worker derives them)."""

    client: RegistryClient
    strategy: SubjectNameStrategy
    topic: str
    tag_policy: dict[str, Any] | None


def registry_target(
    config_path: Path | None, registry_url: str | None, output_topic: str | None
) -> RegistryTarget | None:
    from stream_anon.app import load_tag_policy
    from stream_anon.config import ConfigError, Settings, load_settings
    from stream_anon.registry import RegistryClient, RegistryError, SubjectNameStrategy

    try:
        settings = load_settings(config_path) if config_path else Settings()
        tag_policy = load_tag_policy(settings.tag_policy_file)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    url = registry_url or settings.schema_registry_url
    if not url:
        return None
    options = settings.schema_registry
    client = RegistryClient(url, options)
    try:
        client.check()
    except RegistryError as exc:
        registry_failed(exc)
    strategy = SubjectNameStrategy(options.subject_name_strategy)
    return RegistryTarget(client, strategy, output_topic or settings.output_topic, tag_policy)


def registry_failed(exc: Exception) -> NoReturn:
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


@click.command()
@click.argument("paths", nargs=-1, required=True, type=SCHEMA_PATHS)
@KEYS_OPTION
@registry_options(required=False)
def lint(
    paths: tuple[Path, ...],
    keys_path: Path | None,
    config_path: Path | None,
    registry_url: str | None,
    output_topic: str | None,
) -> None:
    """Check annotated schemas: every problem with its field path; exit 1 if any.

    PATHS are .avsc files or directories of them. Usable as a pre-merge check by producer teams. With
    --registry (or a --config naming one), each derived schema is also checked against the registry: a
    rule change whose derived schema the registry would refuse (derived_schema_rejected in the worker) is
    a problem too. Exit 2 when the registry cannot be asked.
    """
    from stream_anon.registry import RegistryError, derived_subject

    keys = _keys(keys_path)
    target = registry_target(config_path, registry_url, output_topic) if registry_url or config_path else None
    problems: list[tuple[Path, Problem]] = []
    files = list(schema_files(paths))
    for path in files:
        try:
            plan = compile_file(path, keys, target.tag_policy if target else None)
        except SchemaRulesError as exc:
            problems.extend((path, p) for p in exc.problems)
            continue
        if target is None:
            continue
        subject = derived_subject(target.strategy, target.topic, plan.derived_schema)
        try:
            ok, why = target.client.compatible(subject, plan.derived_schema)
        except RegistryError as exc:
            registry_failed(exc)
        if not ok:
            problems.append(
                (
                    path,
                    Problem(
                        "(derived schema)", "derived_schema_rejected", f"{subject} would refuse it: {why}"
                    ),
                )
            )
    for path, p in problems:
        click.echo(problem_lines(path, [p])[0])
    click.echo(f"{len(files)} schema(s), {len(problems)} problem(s)", err=True)
    sys.exit(1 if problems or not files else 0)


@click.command()
@click.argument("paths", nargs=-1, required=True, type=SCHEMA_PATHS)
@click.option(
    "--format", "fmt", type=click.Choice(["markdown", "json"]), default="markdown", show_default=True
)
def catalog(paths: tuple[Path, ...], fmt: str) -> None:
    """The PII inventory: each field path, its type, entity, operation and derived type."""
    entries: list[tuple[str, FieldRule]] = []
    for path in schema_files(paths):
        try:
            plan = compile_file(path, None)
        except SchemaRulesError as exc:
            refuse(path, exc)
        name = f"{plan.writer_schema.get('namespace', '')}.{plan.writer_schema['name']}".lstrip(".")
        entries.extend((name, rule) for rule in plan.field_rules)
    if fmt == "json":
        click.echo(
            json.dumps(
                [
                    {
                        "schema": s,
                        "path": r.path,
                        "type": r.avro_type,
                        "entity": r.entity,
                        "operation": r.op,
                        "derived_type": r.derived_type,
                    }
                    for s, r in entries
                ],
                indent=2,
            )
        )
        return
    click.echo("| schema | field | type | entity | operation | derived type |")
    click.echo("|---|---|---|---|---|---|")
    for s, r in entries:
        derived = r.derived_type or "(dropped)"
        click.echo(f"| {s} | `{r.path}` | {r.avro_type} | {r.entity or ''} | {r.op} | {derived} |")


@click.group()
def schemas() -> None:
    """Schemas: derive the sanitized schema that analytics consumers read, register it."""


@schemas.command()
@click.argument("schema", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def derive(schema: Path) -> None:
    """Print the sanitized (derived) schema of an annotated SCHEMA: rules applied, annotations removed."""
    try:
        plan = compile_file(schema, None)
    except SchemaRulesError as exc:
        refuse(schema, exc)
    click.echo(json.dumps(plan.derived_schema, indent=2, ensure_ascii=False))


@schemas.command()
@click.argument("paths", nargs=-1, required=True, type=SCHEMA_PATHS)
@registry_options(required=True)
def register(
    paths: tuple[Path, ...], config_path: Path | None, registry_url: str | None, output_topic: str | None
) -> None:
    """Register the derived schema of each annotated schema in PATHS, under the sanitized topic's subject.

    For workers configured with schema_registry.auto_register_derived: false (they may only read the
    registry): run it from CI when an annotated schema changes, before the producers ship it. Exit 1 if
    the registry refuses one (incompatible: the worker would dead-letter its records), 2 if it cannot be
    asked.
    """
    from stream_anon.registry import DerivedSchemaRejected, RegistryError, derived_subject

    target = registry_target(config_path, registry_url, output_topic)
    if target is None:
        raise click.UsageError("give --registry URL, or a --config with schema_registry_url")
    refused = 0
    for path in schema_files(paths):
        try:
            plan = compile_file(path, None, target.tag_policy)
        except SchemaRulesError as exc:
            refuse(path, exc)
        subject = derived_subject(target.strategy, target.topic, plan.derived_schema)
        try:
            schema_id = target.client.register(subject, plan.derived_schema)
        except DerivedSchemaRejected as exc:
            click.echo(f"{path}: refused under {subject}: {exc.message}", err=True)
            refused += 1
            continue
        except RegistryError as exc:
            registry_failed(exc)
        click.echo(f"{path}: derived schema registered under {subject} (id {schema_id})")
    sys.exit(1 if refused else 0)


@click.group()
def keys() -> None:
    """Keys files for hmac, tokenize and date_shift (secrets: readable by their owner only)."""


@keys.command()
@click.option(
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the new keys file (mode 0600).",
)
@click.option(
    "--name",
    "names",
    multiple=True,
    default=("default",),
    show_default=True,
    help="Key names to create (repeatable).",
)
@click.option(
    "--dlq-key",
    metavar="NAME",
    help="Also create key NAME and seal dead letters with it (dlq_encryption_key; docs/dead-letter.md).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing file (its secrets are lost).")
def generate(output: Path, names: tuple[str, ...], dlq_key: str | None, force: bool) -> None:
    """Write a keys file with fresh random secrets."""
    if output.exists() and not force:
        raise click.ClickException(
            f"{output} exists; rotate it with `stream-anon keys rotate` or pass --force"
        )
    try:
        generated = Keys.generate(tuple(names))
        if dlq_key is not None:
            generated = generated.sealing_dead_letters_with(dlq_key)
    except KeysError as exc:
        raise click.ClickException(str(exc)) from None
    generated.save(output)
    sealing = f"; dead letters sealed with {dlq_key}" if dlq_key else ""
    click.echo(f"wrote {output} with key(s) {', '.join(generated.names)} (mode 0600){sealing}", err=True)


@keys.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--key", "name", default="default", show_default=True, help="Key to rotate.")
def rotate(file: Path, name: str) -> None:
    """Add a new active version of a key; older versions stay for reading old tokens."""
    loaded = _keys(file)
    assert loaded is not None
    try:
        rotated = loaded.rotate(name)
    except KeysError as exc:
        raise click.ClickException(str(exc)) from None
    rotated.save(file)
    version = rotated.active(name)[0]
    click.echo(f"{name}: version {version} is now active", err=True)


@keys.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--key", "name", required=True, help="Key whose version to destroy.")
@click.option(
    "--version", "version", type=click.IntRange(min=1), required=True, help="The version to destroy."
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def destroy(file: Path, name: str, version: int, yes: bool) -> None:
    """Remove a key version for good: what it sealed or tokenized can never be read again.

    This is how sealed dead letters are erased before retention removes them (docs/dead-letter.md).
    Copies of the keys file elsewhere (backups, Secrets) must be replaced too. The active version
    cannot be destroyed: rotate first.
    """
    loaded = _keys(file)
    assert loaded is not None
    try:
        remaining = loaded.without_version(name, version)
    except KeysError as exc:
        raise click.ClickException(str(exc)) from None
    if not yes:
        click.confirm(f"destroy version {version} of {name!r}? This cannot be undone", abort=True)
    remaining.save(file)
    click.echo(f"{name}: version {version} destroyed", err=True)


@click.command(name="detokenize")
@click.option(
    "--keys",
    "keys_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The keys file the tokens were made with.",
)
@click.argument("tokens", nargs=-1, required=True)
def detokenize_command(keys_path: Path, tokens: tuple[str, ...]) -> None:
    """Reverse tokenize values (authorized re-identification). Exit 1 if any token does not verify."""
    loaded = _keys(keys_path)
    assert loaded is not None
    failed = 0
    for token in tokens:
        try:
            click.echo(detokenize(loaded, token))
        except TokenError as exc:
            failed += 1
            click.echo(f"error: {exc}", err=True)
    sys.exit(1 if failed else 0)
