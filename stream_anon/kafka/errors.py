"""The error a Kafka-facing process stops on."""

from __future__ import annotations

from confluent_kafka import KafkaError


class FatalKafkaError(Exception):
    """A configuration or connectivity problem the process cannot recover from (broker unreachable,
    topic missing, fenced by a newer instance, a record no topic accepts): the process stops with this
    message and a non-zero exit."""


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
