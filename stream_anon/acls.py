"""The least-privilege Kafka ACLs of a worker, of the dead-letter replay and of an analytics reader,
computed from the settings.

One source for three uses: ``stream-anon acls`` prints them, the worker checks at start-up that it holds
them (``missing_rights``), and the cluster tests grant exactly them. docs/security.md gives the reasoning
for each entry.

Kafka's implications keep the set short: READ and WRITE imply DESCRIBE on the same resource, so "describe
what it must describe" (topic metadata, committed offsets, the coordinators) needs no entry of its own.
Since Kafka 3.0 an idempotent or transactional producer needs WRITE on a topic (not IDEMPOTENT_WRITE on
the cluster), so the cluster resource is absent too.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Literal

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._acl import AclOperation  # re-exported by confluent_kafka.admin, untyped there

from stream_anon.config import Settings

ResourceType = Literal["TOPIC", "GROUP", "TRANSACTIONAL_ID"]
Pattern = Literal["LITERAL", "PREFIXED"]
Operation = Literal["READ", "WRITE", "DESCRIBE"]

DEFAULT_WORKER_PRINCIPAL = "User:stream-anon"
DEFAULT_READER_PRINCIPAL = "User:analytics"
DEFAULT_READER_GROUP_PREFIX = "analytics-"


@dataclass(frozen=True)
class Acl:
    """One ALLOW entry: ``principal`` may do ``operation`` on the resource, from any host."""

    principal: str
    resource_type: ResourceType
    resource_name: str
    pattern: Pattern
    operation: Operation
    why: str

    @property
    def right(self) -> str:
        """The right in words, as error messages name it: ``WRITE on TOPIC 'feedback.sanitized'``."""
        prefix = " (prefix)" if self.pattern == "PREFIXED" else ""
        return f"{self.operation} on {self.resource_type} '{self.resource_name}'{prefix}"


def check_principal(principal: str) -> str:
    kind, sep, name = principal.partition(":")
    if not sep or not kind or not name:
        raise ValueError(f"principal {principal!r} must look like User:NAME")
    return principal


def transactional_id_resource(settings: Settings) -> tuple[str, Pattern]:
    """The worker's transactional ids: its configured id, or every ``<group_id>-<host>`` by prefix (one
    per pod, stable across its restarts, so each pod fences only its own predecessor)."""
    if settings.transactional_id:
        return settings.transactional_id, "LITERAL"
    return f"{settings.group_id}-", "PREFIXED"


def worker_acls(settings: Settings, principal: str = DEFAULT_WORKER_PRINCIPAL) -> list[Acl]:
    """What a worker with ``settings`` needs, and nothing else."""
    check_principal(principal)
    acls = [
        Acl(principal, "TOPIC", t, "LITERAL", "READ", "consume the raw records (implies DESCRIBE: metadata)")
        for t in settings.input_topics
    ]
    acls.append(
        Acl(
            principal,
            "GROUP",
            settings.group_id,
            "LITERAL",
            "READ",
            "join its consumer group and commit the consumed offsets (in the transaction)",
        )
    )
    acls.append(
        Acl(principal, "TOPIC", settings.output_topic, "LITERAL", "WRITE", "publish sanitized records")
    )
    acls.append(
        Acl(principal, "TOPIC", settings.dlq_topic, "LITERAL", "WRITE", "publish dead letters and why")
    )
    if settings.delivery == "exactly_once":
        name, pattern = transactional_id_resource(settings)
        acls.append(
            Acl(
                principal,
                "TRANSACTIONAL_ID",
                name,
                pattern,
                "WRITE",
                "initialize, commit and abort its transactions (implies DESCRIBE: find the coordinator)",
            )
        )
    return acls


def replay_acls(settings: Settings, principal: str, group: str) -> list[Acl]:
    """What ``stream-anon dlq replay --group GROUP`` needs: read the dead letters, write them back to the
    worker's input topics (the only topics a replay writes), and commit its position in the same
    transaction as those writes. A principal of its own: the worker must not write the raw topics."""
    check_principal(principal)
    acls = [
        Acl(
            principal,
            "TOPIC",
            settings.dlq_topic,
            "LITERAL",
            "READ",
            "read the dead letters (implies DESCRIBE: metadata, end offsets)",
        ),
        Acl(
            principal,
            "GROUP",
            group,
            "LITERAL",
            "READ",
            "fetch the replay's committed position and commit the next one (in the transaction)",
        ),
    ]
    acls += [
        Acl(
            principal,
            "TOPIC",
            t,
            "LITERAL",
            "WRITE",
            "put replayed records back on their source topic (implies DESCRIBE: partition count)",
        )
        for t in settings.input_topics
    ]
    acls.append(
        Acl(
            principal,
            "TRANSACTIONAL_ID",
            group,
            "LITERAL",
            "WRITE",
            "one transaction per batch: the replayed records and the replay's offsets, or nothing",
        )
    )
    return acls


def reader_acls(
    settings: Settings,
    principal: str = DEFAULT_READER_PRINCIPAL,
    group_prefix: str = DEFAULT_READER_GROUP_PREFIX,
    replay_group: str | None = None,
) -> list[Acl]:
    """A read-only consumer of the sanitized topic: never the raw or dead-letter topics (the dead
    letters carry the raw record), never the worker's group nor the replay's (committing there would
    skip raw records or dead letters)."""
    check_principal(principal)
    for whose, group in (("worker", settings.group_id), ("replay", replay_group)):
        if group is not None and group.startswith(group_prefix):
            raise ValueError(
                f"reader group prefix {group_prefix!r} would also match the {whose}'s group {group!r}"
            )
    return [
        Acl(principal, "TOPIC", settings.output_topic, "LITERAL", "READ", "consume sanitized records"),
        Acl(principal, "GROUP", group_prefix, "PREFIXED", "READ", "its own consumer groups, by prefix"),
    ]


def as_json(acls: Iterable[Acl]) -> str:
    return json.dumps([{**asdict(a), "host": "*", "permission": "ALLOW"} for a in acls], indent=2)


_RESOURCE_FLAG = {"TOPIC": "--topic", "GROUP": "--group", "TRANSACTIONAL_ID": "--transactional-id"}


def as_kafka_acls_commands(acls: Iterable[Acl]) -> str:
    """One ``kafka-acls.sh`` command per entry, with its reason as a comment; the bootstrap address and
    an admin's client properties come from ``$BOOTSTRAP`` and ``$ADMIN_CONFIG``."""
    lines = []
    for a in acls:
        lines.append(f"# {a.principal}: {a.why}")
        parts = [
            'kafka-acls.sh --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONFIG" --add',
            f"--allow-principal {shlex.quote(a.principal)}",
            f"--operation {a.operation.title().replace('_', '')}",
            f"{_RESOURCE_FLAG[a.resource_type]} {shlex.quote(a.resource_name)}",
        ]
        if a.pattern == "PREFIXED":
            parts.append("--resource-pattern-type prefixed")
        lines.append(" ".join(parts))
    return "\n".join(lines) + "\n"


# --- checking them against a cluster -------------------------------------------------------------------

_REFUSALS: dict[int, ResourceType] = {
    KafkaError.TOPIC_AUTHORIZATION_FAILED: "TOPIC",
    KafkaError.GROUP_AUTHORIZATION_FAILED: "GROUP",
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED: "TRANSACTIONAL_ID",
}
AUTHORIZATION_ERRORS = frozenset([*_REFUSALS, KafkaError.CLUSTER_AUTHORIZATION_FAILED])


def refused(settings: Settings, code: int, topic: str | None = None) -> str:
    """The operator's message for an authorization error: which of the worker's rights is missing."""
    kind = _REFUSALS.get(code)
    for acl in worker_acls(settings):
        if acl.resource_type == kind and (kind != "TOPIC" or topic is None or acl.resource_name == topic):
            return not_authorized([acl])
    return f"not authorized ({KafkaError(code).name()}{f' on topic {topic}' if topic else ''}); {_HINT}"


_HINT = "`stream-anon acls --config FILE` prints the ACLs the worker needs"
_OPERATIONS = {"READ": AclOperation.READ, "WRITE": AclOperation.WRITE, "DESCRIBE": AclOperation.DESCRIBE}


def not_authorized(missing: list[Acl]) -> str:
    """The operator's message for rights the worker lacks."""
    rights = "; ".join(f"{a.right} to {a.why}" for a in missing)
    return f"not authorized: the worker needs {rights}; {_HINT}"


def missing_rights(admin: AdminClient, settings: Settings, timeout_s: float) -> list[Acl]:
    """The worker's rights on its topics and group that the configured principal does not hold, as the
    broker reports them (authorized operations). Topics that do not exist are left to the caller. An
    empty list on a broker without an authorizer, which reports no authorized operations."""
    needed = worker_acls(settings)
    topics = sorted({a.resource_name for a in needed if a.resource_type == "TOPIC"})
    held: dict[tuple[str, str], set[AclOperation] | None] = {}
    for name, future in admin.describe_topics(
        TopicCollection(topics), request_timeout=timeout_s, include_authorized_operations=True
    ).items():
        try:
            ops = future.result()
            held[("TOPIC", name)] = set(ops.authorized_operations) if ops.authorized_operations else None
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_AUTHORIZATION_FAILED:
                held[("TOPIC", name)] = None  # unknown topic and the like: the caller reports those
            else:
                held[("TOPIC", name)] = set()
    group = settings.group_id
    try:
        description = admin.describe_consumer_groups(
            [group], request_timeout=timeout_s, include_authorized_operations=True
        )[group].result()
        ops = description.authorized_operations
        held[("GROUP", group)] = set(ops) if ops else None
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.GROUP_AUTHORIZATION_FAILED:
            raise
        held[("GROUP", group)] = set()
    missing = []
    for acl in needed:
        ops = held.get((acl.resource_type, acl.resource_name))
        if ops is not None and _OPERATIONS[acl.operation] not in ops:
            missing.append(acl)
    return missing
