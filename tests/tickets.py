"""The ticket records of the fault and cluster scenarios, and the paced producer that writes them.

A light schema (tests/faults/schemas/ticket.avsc) with PII in its annotated fields; every value is unique
to the record's number, and the record's key is ``k<number>``, so an audit can follow each input id.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from kafkatools import Framer

SCHEMAS = Path(__file__).resolve().parent / "faults" / "schemas"
TICKET = json.loads((SCHEMAS / "ticket.avsc").read_text())


def ticket(i: int, **overrides: Any) -> dict[str, Any]:
    """A valid record with PII in the annotated fields; every value is unique to ``i``."""
    return {
        "id": f"t{i}",
        "seq": i,
        "name": f"Marisol Quintanilla{i}",
        "email": f"marisol.q{i}@example.com",
        "ip": f"198.51.{i % 250}.{(i * 7) % 250 + 1}",
        "minutes": float(i % 90),
        "score": (i % 100) / 7,
        "note": "all good",
        "blob": "",
        **overrides,
    }


def pii_values(record: dict[str, Any]) -> list[str]:
    return [record["name"], record["email"], record["ip"]]


class PacedProducer(threading.Thread):
    """Writes tickets ``first`` .. ``first + count - 1`` at about ``rate`` per second with the client
    ``settings`` (a bootstrap address, or a principal's TLS/SASL settings). Survives broker outages and
    failovers (idempotent, a long message timeout): they may delay a record, never drop or repeat it."""

    def __init__(self, settings: dict[str, Any], topic: str, count: int, rate: float, first: int = 0) -> None:
        super().__init__(daemon=True, name=f"producer-{topic}")
        self.settings, self.topic, self.count, self.rate, self.first = settings, topic, count, rate, first
        self.framer = Framer(TICKET)
        self.sent = 0
        self.failed: list[str] = []

    def run(self) -> None:
        producer = Producer(
            {**self.settings, "enable.idempotence": True, "linger.ms": 10, "message.timeout.ms": 600_000}
        )

        def report(err: Any, _msg: Any) -> None:
            if err is not None:
                self.failed.append(err.name())

        start = time.monotonic()
        for i in range(self.first, self.first + self.count):
            delay = start + (i - self.first) / self.rate - time.monotonic()
            if delay > 0:
                producer.poll(delay)
            value = self.framer(ticket(i))
            while True:
                try:
                    producer.produce(self.topic, value, f"k{i}".encode(), on_delivery=report)
                    break
                except BufferError:
                    producer.poll(0.1)
            self.sent += 1
        remaining = producer.flush(600)
        if remaining:
            self.failed.append(f"{remaining} not delivered")
