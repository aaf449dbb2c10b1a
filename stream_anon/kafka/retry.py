"""Retrying a librdkafka call while its error says a retry can succeed."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import structlog
from confluent_kafka import KafkaError, KafkaException

log = structlog.get_logger(__name__)

T = TypeVar("T")


def retrying(call: Callable[[], T], what: str, attempts: int = 10) -> T:
    """``call()``, again after a retriable ``KafkaException`` (backing off 0.2 s, doubling, at most 5 s)
    up to ``attempts`` times in all; a non-retriable error, or the last one, is raised."""
    for attempt in range(attempts):
        try:
            return call()
        except KafkaException as exc:
            err: KafkaError = exc.args[0]
            if not err.retriable() or attempt == attempts - 1:
                raise
            log.warning("retrying", call=what, code=err.name())
            time.sleep(min(0.2 * 2**attempt, 5.0))
    raise ValueError("attempts must be at least 1")
