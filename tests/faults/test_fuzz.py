"""Hostile input through the real worker: at least 10,000 bad payloads mixed with good ones.

The payloads come from hypothesis strategies (random bytes, magic bytes, fingerprints, strings) and from
mutations of valid records (truncation, bit flips, invalid UTF-8). Each payload carries the outcome it
must have; the worker must never crash or stall, dead-letter every bad one with its reason, sanitize every
good one, keep its memory bounded, and never show a raw PII value in its logs, /metrics or the
dead-letter headers."""

from __future__ import annotations

import json
import math
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kafkatools
import pytest
from faultkit import RssSampler, fault_env, free_port, http_get, source_of
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from kafkatools import Framer, create_topics, start_worker, unique
from tickets import SCHEMAS, TICKET, pii_values, ticket

from stream_anon.schemas import fingerprint
from stream_anon.wire import SINGLE_OBJECT_MAGIC

pytestmark = [pytest.mark.broker, pytest.mark.slow]

BAD_PER_KIND = 1250
RSS_BOUND_MB = 400  # measured peak 183 MB with six 3 MB records among 15,700
MAX_BYTES = 16 * 2**20  # raw, sanitized and dead-letter topics take the multi-megabyte records

SANITIZED = "sanitized"


def known_fingerprints() -> set[bytes]:
    known = set()
    for path in SCHEMAS.glob("*.avsc"):
        try:
            known.add(fingerprint(json.loads(path.read_text())))
        except Exception:  # the schemas that reference files or URLs do not parse: that is their point
            continue
    return known


KNOWN_FINGERPRINTS = known_fingerprints()


@dataclass(frozen=True)
class Payload:
    kind: str
    value: bytes | None
    expected: frozenset[str]  # the outcomes it may have: "sanitized" or dead-letter reasons
    pii: tuple[str, ...] = ()


def framing_reason(value: bytes) -> str:
    """What the wire format alone says about arbitrary bytes (no registry is configured)."""
    if not value:
        return "empty_value"
    if value[0] == 0:
        return "unknown_framing" if len(value) < 5 else "unknown_schema"
    if value[:2] == SINGLE_OBJECT_MAGIC:
        return "unknown_framing" if len(value) < 10 else "unknown_schema"
    return "unknown_framing"


def collect(strategy: st.SearchStrategy[Any], n: int) -> list[Any]:
    """``n`` examples drawn by hypothesis (derandomized: the same ones on every run)."""
    found: list[Any] = []

    @settings(
        max_examples=n,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )
    @given(strategy)
    def draw(example: Any) -> None:
        found.append(example)

    draw()
    return found


def payloads() -> list[Payload]:
    ticket_framer = Framer(TICKET)
    rng = random.Random(1129)
    out: list[Payload] = []
    seq = iter(range(10**9))

    def good(**overrides: Any) -> tuple[bytes, dict[str, Any]]:
        record = ticket(next(seq), **overrides)
        return ticket_framer(record), record

    # good records, spread through the stream
    for _ in range(3000):
        value, record = good()
        out.append(Payload("good", value, frozenset({SANITIZED}), tuple(pii_values(record))))
    # NaN and infinities: a noised field refuses NaN (rule_failed) and clamps infinities into its bounds;
    # a rounded field passes them through as the valid Avro doubles they are
    for i in range(BAD_PER_KIND):
        special = [math.nan, math.inf, -math.inf][i % 3]
        value, record = good(minutes=special) if i % 2 == 0 else good(score=special)
        expected = "rule_failed" if i % 2 == 0 and math.isnan(special) else SANITIZED
        out.append(Payload("nan_inf", value, frozenset({expected}), tuple(pii_values(record))))
    # random bytes (hypothesis): the framing decides the reason
    for value in collect(st.binary(min_size=0, max_size=300), BAD_PER_KIND):
        out.append(Payload("random_bytes", value, frozenset({framing_reason(value)})))
    # empty values and tombstones
    for i in range(200):
        out.append(Payload("empty", b"" if i % 2 else None, frozenset({"empty_value"})))
    # truncated Avro: a valid record cut short anywhere after its header
    for _ in range(BAD_PER_KIND):
        value, record = good()
        cut = rng.randrange(10, len(value))
        out.append(Payload("truncated", value[:cut], frozenset({"undecodable"}), tuple(pii_values(record))))
    # wrong magic bytes in front of a valid body
    magics = collect(st.binary(min_size=1, max_size=2), BAD_PER_KIND)
    for magic in magics:
        value, record = good()
        wrong = magic + value[2:]
        if wrong[:2] == SINGLE_OBJECT_MAGIC:
            continue  # that is the right magic
        out.append(
            Payload("wrong_magic", wrong, frozenset({framing_reason(wrong)}), tuple(pii_values(record)))
        )
    # unknown fingerprints and Confluent ids (no registry): unknown_schema
    for fp in collect(st.binary(min_size=8, max_size=8), BAD_PER_KIND):
        value, record = good()
        if fp in KNOWN_FINGERPRINTS:
            continue
        framed = SINGLE_OBJECT_MAGIC + fp + value[10:] if fp[0] % 2 else b"\x00" + fp[:4] + value[10:]
        out.append(
            Payload("unknown_schema", framed, frozenset({"unknown_schema"}), tuple(pii_values(record)))
        )
    # invalid UTF-8 in a string field
    for i in range(BAD_PER_KIND):
        value, record = good(note="ab")
        junk = bytes([0xFF, 0xC0 + i % 30, 0x80 + i % 60])
        body = value[: value.index(b"\x04ab")] + b"\x06" + junk + value[value.index(b"\x04ab") + 3 :]
        out.append(Payload("invalid_utf8", body, frozenset({"undecodable"}), tuple(pii_values(record))))
    # mutations of valid records: bit flips in the body decode to anything or to nothing
    for _ in range(BAD_PER_KIND):
        value, record = good()
        flipped = bytearray(value)
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(10, len(flipped))
            flipped[pos] ^= 1 << rng.randrange(8)
        out.append(
            Payload(
                "bit_flip",
                bytes(flipped),
                frozenset({SANITIZED, "undecodable", "rule_failed", "leak_detected", "encode_failed"}),
                tuple(pii_values(record)),
            )
        )
    # a schema whose fields contradict their annotations (mask on an int): invalid_rules
    contradicting = Framer(json.loads((SCHEMAS / "contradicting.avsc").read_text()))
    for i in range(BAD_PER_KIND):
        out.append(
            Payload("contradicting", contradicting({"id": f"c{i}", "age": i}), frozenset({"invalid_rules"}))
        )
    # deeply nested values of recursive schemas. All fields kept: the type is its own derived type and the
    # records are handled (issue 22). An anonymized field beside a kept self-reference: the kept part would
    # need the untransformed type, so the schema is refused. Either way depth neither crashes nor stalls.
    for name, count, outcome in (
        ("recursive", BAD_PER_KIND // 5, SANITIZED),
        ("recursive-anonymized", BAD_PER_KIND, "invalid_rules"),
    ):
        framer = Framer(json.loads((SCHEMAS / f"{name}.avsc").read_text()))
        for i in range(count):
            node: dict[str, Any] | None = None
            for depth in range(1 + i % 200):
                node = {"label": f"n{depth}", "next": node}
            assert node is not None
            out.append(Payload(f"deep_nesting {name}", framer(node), frozenset({outcome})))
    # schemas that reference files or URLs: never loaded, so their records have an unknown fingerprint
    for name in ("references-url", "references-file"):
        schema = json.loads((SCHEMAS / f"{name}.avsc").read_text())
        schema["fields"][1]["type"] = "string"  # what the producer would claim the field is
        framer = Framer(schema)
        for i in range(BAD_PER_KIND // 2):
            out.append(
                Payload(name, framer({"id": f"r{i}", "ext": "/etc/passwd"}), frozenset({"unknown_schema"}))
            )
    # strings of several megabytes: sanitized when whole, undecodable when cut
    for i in range(6):
        big = " ".join(rng.choice(["lorem", "ipsum", "dolor", "sit", "amet"]) for _ in range(600_000))
        value, record = good(note=big)
        if i % 2:
            out.append(
                Payload(
                    "several_mb",
                    value[: len(value) // 2],
                    frozenset({"undecodable"}),
                    tuple(pii_values(record)),
                )
            )
        else:
            out.append(Payload("several_mb", value, frozenset({SANITIZED}), tuple(pii_values(record))))
    rng.shuffle(out)
    return out


def test_hostile_input_is_dead_lettered_with_its_reason_and_nothing_leaks(
    broker: str, tmp_path: Path
) -> None:
    cases = payloads()
    bad = [p for p in cases if SANITIZED not in p.expected]
    assert len(bad) >= 10_000
    raw, out, dlq = unique("fuzz-raw"), unique("fuzz-out"), unique("fuzz-dlq")
    big = {"max.message.bytes": str(MAX_BYTES)}
    create_topics([raw, out, dlq], partitions=3, config=big)
    producer = kafkatools.Producer(
        {"bootstrap.servers": kafkatools.BOOTSTRAP, "linger.ms": 20, "message.max.bytes": MAX_BYTES}
    )
    for i, p in enumerate(cases):
        while True:
            try:
                producer.produce(raw, p.value, f"f{i}".encode())
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(120) == 0

    port = free_port()
    env = fault_env(
        raw,
        out,
        dlq,
        metrics_port=port,
        kafka=json.dumps({"message.max.bytes": MAX_BYTES, "session.timeout.ms": 6000}),
    )
    log = tmp_path / "worker.log"
    worker = start_worker(env, "--until-idle", "10", log_path=log)
    rss = RssSampler(worker.pid)
    rss.start()
    unhealthy = 0
    metrics_page = ""
    deadline = time.monotonic() + 900
    while worker.poll() is None and time.monotonic() < deadline:
        status, _ = http_get(port, "/healthz")
        unhealthy += status == 503
        page_status, page = http_get(port, "/metrics")
        if page_status == 200:
            metrics_page = page
        time.sleep(2)
    rss.stop()
    code = worker.wait(timeout=60)
    assert code == 0, f"the worker crashed or stalled (exit {code}): {log.read_text()[-3000:]}"
    assert unhealthy == 0, "liveness reported a stall"
    assert rss.peak_mb < RSS_BOUND_MB, f"peak RSS {rss.peak_mb:.0f} MB"

    by_key = {f"f{i}".encode(): p for i, p in enumerate(cases)}
    outcomes: dict[bytes, str] = {}
    offsets: Counter[tuple[int, int]] = Counter()
    dead = kafkatools.read_all(dlq)
    for r in kafkatools.read_all(out, timeout_s=300):
        offsets[source_of(r)] += 1
    produced_keys = {(r.partition, r.offset): r.key for r in kafkatools.read_all(raw, timeout_s=300)}
    for r in kafkatools.read_all(out, timeout_s=300):
        outcomes[produced_keys[source_of(r)] or b""] = SANITIZED
    for r in dead:
        offsets[source_of(r)] += 1
        outcomes[r.key or b""] = r.headers["stream-anon.reason"]
    assert set(offsets) == set(produced_keys), "every input offset is accounted for"
    assert all(n == 1 for n in offsets.values()), "no input offset is published twice"

    wrong = Counter(
        (p.kind, outcomes.get(key, "missing"))
        for key, p in by_key.items()
        if outcomes.get(key) not in p.expected
    )
    assert not wrong, f"unexpected outcomes (kind, outcome): {dict(wrong)}"

    # no raw PII value of any input in the logs, the metrics page or the dead-letter headers
    headers_text = json.dumps([r.headers for r in dead])
    logs_text = log.read_text()
    secrets = {v for p in cases for v in p.pii}
    for where, text in (
        ("logs", logs_text),
        ("metrics", metrics_page),
        ("dead-letter headers", headers_text),
    ):
        leaked = [v for v in secrets if v in text]
        assert not leaked, f"{len(leaked)} raw PII values in the {where}, e.g. {leaked[0][:3]}..."
    kinds = Counter(p.kind for p in cases)
    print(f"fuzz: inputs={len(cases)} bad={len(bad)} kinds={dict(kinds)} peak_rss_mb={rss.peak_mb:.0f}")
    print(f"fuzz: outcomes={dict(Counter(outcomes.values()))}")
