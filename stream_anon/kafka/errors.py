"""The error a Kafka-facing process stops on."""

from __future__ import annotations

from confluent_kafka import KafkaError


class FatalKafkaError(Exception):
    """A configuration or connectivity problem the process cannot recover from (broker unreachable,
    topic missing, fenced by a newer instance, a record no topic accepts): the process stops with this
    message and a non-zero exit."""


class Fenced(FatalKafkaError):
    """The transactional producer was fenced: its epoch is no longer the transactional id's current one.

    Either a newer instance with the same transactional id started (a zombie's case), or the broker
    ended this producer's transaction itself, on a transaction timeout or in some coordinator failovers,
    which librdkafka also reports as fenced (it has no KIP-588 recovery). Nothing of the batch is
    visible and its offsets are not committed; a new producer, after a restart, processes it again. The
    worker exits with code 3, the code that asks for a restart.
    """


#: Every code a fenced producer's calls fail with: librdkafka's own, and the broker's two.
FENCED_ERRORS = frozenset({KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH})


def client_failure(err: KafkaError, what: str) -> FatalKafkaError:
    """The error to stop on when a client call failed for good: ``Fenced`` for a fenced producer (a
    restart fixes it), ``FatalKafkaError`` otherwise; the message is ``what`` and the client's reason."""
    kind = Fenced if err.code() in FENCED_ERRORS else FatalKafkaError
    return kind(f"{what}: {err.str()}")


class BatchAborted(Exception):
    """The batch's writes were thrown away; rewind and process it again.

    ``rejected`` names the records whose writes the broker refused for good (a permanent produce error),
    by (topic, partition, offset) of their source, with the error's name.
    """

    def __init__(self, why: str, rejected: dict[tuple[str, int, int], str] | None = None) -> None:
        super().__init__(why)
        self.rejected = rejected or {}


class NotAuthorized(FatalKafkaError):
    """The broker refused an operation for want of a right: retrying cannot help, the process stops.
    ``code`` is the authorization error, ``topic`` the topic refused when the broker says which."""

    def __init__(self, code: int, topic: str | None = None) -> None:
        super().__init__(f"{KafkaError(code).name()}{f' on {topic}' if topic else ''}")
        self.code = code
        self.topic = topic


class WriteRefused(NotAuthorized):
    """A write the broker refused for want of a right (its error names the topic)."""
