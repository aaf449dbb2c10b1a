"""Client configuration from ``Settings``: the one place librdkafka settings are built.

Each builder sets what every client of its kind needs (group, isolation, transactions), then the
caller's ``role`` settings (callbacks, compression); the user's ``kafka`` mapping and secrets file
(``Settings.librdkafka``: bootstrap servers, TLS, SASL) go on top unchanged, so an operator can always
override. Readers built on a bare mapping (``reader_config``) put their own
keys last instead: a bounded read must not commit or read uncommitted records, whatever the mapping says.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from stream_anon.acls import missing_rights, not_authorized
from stream_anon.config import Settings
from stream_anon.kafka.errors import FatalKafkaError

Config = dict[str, Any]


def group_consumer_config(settings: Settings, group_id: str, role: Config | None = None) -> Config:
    """A consumer in ``group_id`` that commits offsets itself and reads committed records only."""
    return {
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        **(role or {}),
        **settings.librdkafka(),
    }


def transactional_producer_config(
    settings: Settings, transactional_id: str, role: Config | None = None
) -> Config:
    """A producer whose writes and consumed offsets commit together (exactly-once)."""
    return {
        "transactional.id": transactional_id,
        "transaction.timeout.ms": settings.transaction_timeout_s * 1000,
        "linger.ms": 5,
        **(role or {}),
        **settings.librdkafka(),
    }


def idempotent_producer_config(settings: Settings, role: Config | None = None) -> Config:
    """A producer without transactions whose retries never duplicate a write (at-least-once)."""
    return {"enable.idempotence": True, "linger.ms": 5, **(role or {}), **settings.librdkafka()}


def reader_config(kafka: Mapping[str, Any], purpose: str, *, read_committed: bool = True) -> Config:
    """A consumer that reads and commits nothing: a throwaway group named after ``purpose``."""
    return {
        **kafka,
        "group.id": f"stream-anon-{purpose}-{uuid.uuid4().hex[:12]}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed" if read_committed else "read_uncommitted",
    }


def check_topics(settings: Settings, timeout_s: float = 30.0, topics: list[str] | None = None) -> None:
    """Fail fast and clearly when the broker is unreachable, a topic is missing or, for the worker's own
    topics, a right is missing.

    ``topics`` defaults to the input, output and dead-letter topics of ``settings``.
    """
    errors: list[KafkaError] = []
    conf: Config = {**settings.librdkafka(), "error_cb": errors.append}
    admin = AdminClient(conf)
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        # the client's own last error says why (authentication, TLS handshake, refused connection)
        admin.poll(0)  # serves the error callbacks queued while list_topics waited
        causes = [e.str() for e in errors if e.code() != KafkaError._ALL_BROKERS_DOWN]
        why = causes[-1] if causes else exc.args[0].str()
        raise FatalKafkaError(
            f"cannot reach Kafka at {conf['bootstrap.servers']} within {timeout_s:.0f}s: {why}"
        ) from None
    if topics is None:
        lacking = missing_rights(admin, settings, timeout_s)
        if lacking:
            raise FatalKafkaError(not_authorized(lacking))
    wanted = [*settings.input_topics, settings.output_topic, settings.dlq_topic] if topics is None else topics
    missing = [t for t in wanted if t not in metadata.topics]
    if missing:
        raise FatalKafkaError(f"topic(s) missing on the broker: {', '.join(missing)}; create them first")


def check_rights(settings: Settings, timeout_s: float = 10.0) -> None:
    """Raise a ``FatalKafkaError`` naming the rights the worker lacks on its topics and group, if any.

    Run after a failure whose client error does not say why: a transaction that fails because a right
    was revoked purges its records (_PURGE_QUEUE) and may leave only INVALID_TXN_STATE behind."""
    try:
        missing = missing_rights(AdminClient(settings.librdkafka()), settings, timeout_s)
    except KafkaException:
        return  # the cluster cannot say: keep the original error
    if missing:
        raise FatalKafkaError(not_authorized(missing))
