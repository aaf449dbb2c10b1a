"""Transactions of a transactional producer: the exactly-once core the worker and the aggregate job share.

A transaction holds a batch's writes and the consumed offsets that led to them; committing it makes
both visible at once to ``read_committed`` readers and to the group, aborting it throws both away.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from stream_anon.acls import AUTHORIZATION_ERRORS
from stream_anon.kafka.errors import FatalKafkaError, NotAuthorized, client_failure
from stream_anon.kafka.retry import retrying


class TransactionalProducer(Protocol):
    """The transactional calls of ``confluent_kafka.Producer``."""

    def init_transactions(self, timeout: float = ...) -> None: ...
    def begin_transaction(self) -> None: ...
    def send_offsets_to_transaction(
        self, positions: list[TopicPartition], group_metadata: Any, timeout: float = ...
    ) -> None: ...
    def commit_transaction(self, timeout: float = ...) -> None: ...
    def abort_transaction(self, timeout: float = ...) -> None: ...


class TransactionAborted(Exception):
    """The transaction cannot commit and must be aborted; its writes will be thrown away."""


class Transactions:
    """Begin, commit with the consumed offsets, abort; retriable errors retried, the rest classified."""

    def __init__(self, producer: TransactionalProducer, timeout_s: float) -> None:
        self.producer = producer
        self._timeout = timeout_s
        # Fences an earlier instance with the same transactional id and aborts its hanging transaction.
        try:
            retrying(lambda: producer.init_transactions(timeout_s), "init_transactions")
        except KafkaException as exc:
            err: KafkaError = exc.args[0]
            if err.code() in AUTHORIZATION_ERRORS:
                raise NotAuthorized(err.code()) from None
            raise FatalKafkaError(f"cannot start transactions: {err.str()}") from None

    def begin(self) -> None:
        self.producer.begin_transaction()

    def commit(
        self, offsets: Mapping[tuple[str, int], int], group_metadata: Any, metadata: str | None = None
    ) -> None:
        """Commit the transaction with ``offsets`` (next offset to read, per topic and partition), each
        committed with ``metadata`` when given.

        Raises ``TransactionAborted`` when the broker says the transaction must be aborted (the caller
        aborts and processes again), ``NotAuthorized`` for a missing right, ``FatalKafkaError`` for
        anything else (fenced, for one).
        """
        if metadata is None:
            positions = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        else:
            positions = [TopicPartition(t, p, o, metadata) for (t, p), o in offsets.items()]
        producer = self.producer
        try:
            # Both calls may time out and be retried (a worker paused past the timeout meets that first).
            retrying(
                lambda: producer.send_offsets_to_transaction(positions, group_metadata, self._timeout),
                "send_offsets_to_transaction",
            )
            retrying(lambda: producer.commit_transaction(self._timeout), "commit_transaction")
        except KafkaException as exc:
            err = exc.args[0]
            if err.code() in AUTHORIZATION_ERRORS:
                raise NotAuthorized(err.code()) from None
            if err.txn_requires_abort():
                raise TransactionAborted(f"transaction aborted: {err.name()}") from None
            raise client_failure(err, "transaction failed") from None

    def abort(self) -> None:
        try:
            retrying(lambda: self.producer.abort_transaction(self._timeout), "abort_transaction")
        except KafkaException as exc:
            raise client_failure(exc.args[0], "cannot abort the transaction") from None
