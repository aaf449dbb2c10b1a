"""Dead-letter operations on the real broker: the summary's counts, an exactly-once replay after a
schema fix (SIGKILL in the middle included), tombstones and the replay cap, and sealed dead letters."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from kafkatools import Framer, Read, create_topics, produce, read_all, unique, wait_for_offsets, worker_env

from stream_anon.app import build_pipeline, dead_letter_sealing
from stream_anon.cli import main
from stream_anon.config import Settings
from stream_anon.dlq.replay import Planner, ReplayReport, Selection, replay, source_partitions
from stream_anon.dlq.seal import DeadLetterSeal
from stream_anon.dlq.summary import read_summary
from stream_anon.keys import Keys
from stream_anon.worker import Worker

pytestmark = pytest.mark.broker

GOOD = {
    "type": "record",
    "name": "Visit",
    "namespace": "test.dlqops",
    "fields": [
        {"name": "id", "type": "string", "anon": "keep"},
        {"name": "email", "type": "string", "pii": "EMAIL_ADDRESS", "anon": "redact"},
        {"name": "phone", "type": "string", "pii": "PHONE_NUMBER", "anon": "redact"},
    ],
}
# The same schema (same fingerprint) before its phone field was annotated.
UNANNOTATED = {**GOOD, "fields": [*GOOD["fields"][:2], {"name": "phone", "type": "string"}]}
OTHER = {**GOOD, "name": "Other"}


def visit(i: int) -> dict[str, Any]:
    return {"id": f"visit-id-{i:06d}", "email": f"person{i}@example.org", "phone": f"+44 20 7946 {i:04d}"}


def write_schema(directory: Path, schema: dict[str, Any]) -> None:
    directory.mkdir(exist_ok=True)
    (directory / "visit.avsc").write_text(json.dumps(schema))


def settings_for(tmp_path: Path, raw: str, out: str, dlq: str, **extra: Any) -> Settings:
    return Settings(
        input_topics=[raw],
        output_topic=out,
        dlq_topic=dlq,
        group_id=unique("g"),
        schemas_dir=tmp_path / "schemas",
        metrics_port=0,
        output_key="keep",
        transactional_id=unique("tx"),
        **extra,
    )


def run_worker(settings: Settings, idle_s: float = 3.0) -> None:
    sealing = dead_letter_sealing(settings)
    worker = Worker(
        settings, build_pipeline(settings), seal_dead_letter=None if sealing is None else sealing.seal
    )
    thread = threading.Thread(target=worker.run, kwargs={"until_idle_s": idle_s})
    thread.start()
    thread.join(timeout=180)
    assert not thread.is_alive(), "worker did not stop"


def read_replayed(topic: str, expected: int, timeout_s: float = 30.0) -> list[Read]:
    """The replayed copies in ``topic``, read until ``expected`` are visible: a committed transaction's
    markers reach each partition a moment after the commit returns, so one read right after it can stop
    at a partition's older last stable offset."""
    deadline = time.monotonic() + timeout_s
    while True:
        copies = [r for r in read_all(topic) if "stream-anon.replay.count" in r.headers]
        if len(copies) >= expected or time.monotonic() >= deadline:
            return copies
        time.sleep(0.5)


def replay_all(
    settings: Settings, keys: Keys | None = None, group: str | None = None, dry_run: bool = False
) -> ReplayReport:
    planner = Planner(
        Selection(),
        DeadLetterSeal(keys or Keys.empty()),
        settings.dlq_max_replays,
        source_partitions(settings, 10),
    )
    return replay(settings, planner, group=group or f"{settings.group_id}-dlq-replay", dry_run=dry_run)


def config_file(tmp_path: Path, settings: Settings, **overrides: Any) -> Path:
    path = tmp_path / "config.yaml"
    document = settings.model_dump(mode="json", exclude_none=True)
    document.update(overrides)
    path.write_text(yaml.safe_dump(document))
    return path


def audit_dead_letters(tmp_path: Path, settings: Settings) -> dict[str, Any]:
    """``stream-anon audit`` of the dead-letter topic (validated detectors only), as JSON."""
    config = config_file(tmp_path, settings)
    result = CliRunner().invoke(
        main,
        ["audit", "--config", str(config), "--topic", settings.dlq_topic, "--no-ner", "--format", "json"],
    )
    assert result.exit_code in (0, 1), result.output
    audited: dict[str, Any] = json.loads(result.stdout)
    return audited


def test_summary_counts_equal_the_dead_letters_of_each_reason(tmp_path: Path) -> None:
    raw, out, dlq = unique("raw"), unique("out"), unique("dlq")
    create_topics([raw, out, dlq], partitions=2)
    write_schema(tmp_path / "schemas", UNANNOTATED)
    (tmp_path / "schemas" / "other.avsc").write_text(json.dumps(OTHER))
    unannotated, other = Framer(UNANNOTATED), Framer(OTHER)
    produce(
        raw,
        [(b"u%d" % i, unannotated(visit(i))) for i in range(7)]
        + [(b"t%d" % i, other(visit(i))[:-4]) for i in range(4)]
        + [(b"f%d" % i, b"\x7fnot avro") for i in range(3)]
        + [(b"d%d" % i, None) for i in range(2)],
    )
    settings = settings_for(tmp_path, raw, out, dlq)
    run_worker(settings)
    produce(dlq, [(b"stray", b"written by something else")], partition=1)

    summary = read_summary(settings, None)
    result = summary.to_dict()
    counts = {reason: span["count"] for reason, span in result["by_reason"].items()}
    assert counts == {"unannotated_field": 7, "undecodable": 4, "unknown_framing": 3, "empty_value": 2}
    assert result["dead_letters"]["count"] == 16
    assert sum(result["by_source"].values()) == 16 and set(result["by_source"]) <= {f"{raw}[0]", f"{raw}[1]"}
    assert result["not_sealed"] == 16
    assert len(result["problems"]) == 1 and "no stream-anon dead-letter headers" in result["problems"][0]

    shown = CliRunner().invoke(
        main, ["dlq", "summary", "--config", str(config_file(tmp_path, settings)), "--format", "json"]
    )
    assert shown.exit_code == 1, shown.output  # one record is not a dead letter
    assert json.loads(shown.stdout)["by_reason"]["unannotated_field"]["count"] == 7
    assert "example.org" not in shown.output and "7946" not in shown.output
    table = CliRunner().invoke(main, ["dlq", "summary", "--config", str(config_file(tmp_path, settings))])
    assert "unannotated_field" in table.stdout and "partition 1 offset" in table.stdout

    # the audit knows it reads the dead-letter topic, and finds the raw PII of unsealed dead letters
    audited = audit_dead_letters(tmp_path, settings)
    assert audited["role"] == "dead-letter topic" and audited["sealed"] == 0
    assert {f["entity"] for f in audited["findings"]} >= {"EMAIL_ADDRESS"}
    assert audited["suspect_records"] >= 7


def test_replay_after_a_schema_fix_sanitizes_each_dead_letter_once_despite_a_sigkill(tmp_path: Path) -> None:
    count = 4000
    raw, out, dlq = unique("raw"), unique("out"), unique("dlq")
    create_topics([raw, out, dlq], partitions=3)
    write_schema(tmp_path / "schemas", UNANNOTATED)
    unannotated = Framer(UNANNOTATED)
    originals = {b"k%d" % i: unannotated(visit(i)) for i in range(count)}
    produce(raw, list(originals.items()))
    settings = settings_for(tmp_path, raw, out, dlq)
    run_worker(settings)
    dead = read_all(dlq)
    assert len(dead) == count and not read_all(out)

    write_schema(tmp_path / "schemas", GOOD)  # the fix: the phone field annotated, same fingerprint
    config = config_file(tmp_path, settings, batch_size=25)
    env = worker_env()
    replaying = subprocess.Popen(
        [sys.executable, "-m", "stream_anon", "dlq", "replay", "--config", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    # SIGKILL once some batches are committed, well before the last
    wait_for_offsets(raw, count + 300)
    replaying.send_signal(signal.SIGKILL)
    assert replaying.wait(timeout=60) == -signal.SIGKILL
    partial = [r for r in read_all(raw) if "stream-anon.replay.count" in r.headers]
    assert 0 < len(partial) < count, "the replay was killed in the middle"

    resumed = subprocess.run(
        [sys.executable, "-m", "stream_anon", "dlq", "replay", "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"replayed {count - len(partial)} of" in resumed.stdout

    replayed = read_replayed(raw, count)
    once = Counter(originals.keys())
    assert Counter(r.key for r in replayed) == once, "each dead letter replayed exactly once"
    assert all(r.value == originals[r.key] for r in replayed if r.key is not None), "original bytes"
    assert {r.headers["stream-anon.replay.count"] for r in replayed} == {"1"}
    source_of = {d.key: d for d in dead}
    assert all(r.partition == int(source_of[r.key].headers["stream-anon.source.partition"]) for r in replayed)

    run_worker(settings)
    sanitized = read_all(out)
    assert Counter(r.key for r in sanitized) == once, "each record sanitized exactly once"
    assert len(read_all(dlq)) == count, "nothing came back to the dead-letter topic"
    blob = b"".join(r.value or b"" for r in sanitized)
    assert b"example.org" not in blob and b"7946" not in blob
    assert replay_all(settings).replayed == Counter(), "a finished replay resumes at the end"


def test_tombstones_stay_tombstones_and_the_replay_cap_holds_records_back(tmp_path: Path) -> None:
    raw, out, dlq = unique("raw"), unique("out"), unique("dlq")
    create_topics([raw, out, dlq], partitions=1)
    write_schema(tmp_path / "schemas", GOOD)
    # records that fail again on every replay: two tombstones and three unframed values
    failing = [(b"d0", None), (b"d1", None)] + [(b"f%d" % i, b"\x7fjunk%d" % i) for i in range(3)]
    produce(raw, failing)
    settings = settings_for(tmp_path, raw, out, dlq, dlq_max_replays=2)
    run_worker(settings)
    dry = replay_all(settings, dry_run=True)
    assert sum(dry.replayed.values()) == 5 and len(read_all(raw)) == 5, "a dry run writes nothing"
    for round_ in (1, 2):
        report = replay_all(settings)
        assert sum(report.replayed.values()) == 5 and report.passed["held_back"] == 0
        run_worker(settings)
        letters = [r for r in read_all(dlq) if r.headers.get("stream-anon.replay.count") == str(round_)]
        assert sorted(r.key for r in letters) == sorted(k for k, _ in failing)
    copies = [r for r in read_all(raw) if "stream-anon.replay.count" in r.headers]
    assert len(copies) == 10
    assert all(r.value is None for r in copies if r.key in (b"d0", b"d1")), "a tombstone stays a tombstone"
    assert all(r.value is None for r in read_all(dlq) if r.key in (b"d0", b"d1"))

    capped = replay_all(settings)
    assert sum(capped.replayed.values()) == 0 and capped.passed["held_back"] == 5
    held = read_summary(settings, None).to_dict()["held_back"]
    assert held == {"empty_value": 2, "unknown_framing": 3}


def test_sealed_dead_letters_hold_no_raw_bytes_and_replay_to_the_original_bytes(tmp_path: Path) -> None:
    raw, out, dlq = unique("raw"), unique("out"), unique("dlq")
    create_topics([raw, out, dlq], partitions=2)
    write_schema(tmp_path / "schemas", UNANNOTATED)
    keys = Keys.generate().sealing_dead_letters_with("dlq")
    keys_path = tmp_path / "keys.json"
    keys.save(keys_path)
    unannotated = Framer(UNANNOTATED)
    originals = {b"customer-%d@example.org" % i: unannotated(visit(i)) for i in range(50)}
    originals[b"customer-gone@example.org"] = None  # a tombstone
    produce(raw, list(originals.items()))
    settings = settings_for(tmp_path, raw, out, dlq, keys_file=keys_path)
    run_worker(settings)

    dead = read_all(dlq)
    assert len(dead) == len(originals)
    stored = b"".join((r.key or b"") + (r.value or b"") + json.dumps(r.headers).encode() for r in dead)
    for key, value in originals.items():
        assert key not in stored
        if value is not None:
            assert value not in stored
            for pii in visit(int(key.split(b"-")[1].split(b"@")[0])).values():
                assert pii.encode() not in stored, "a raw value is readable in the dead-letter topic"
    assert {r.headers["stream-anon.seal.key"] for r in dead} == {"dlq"}
    audited = audit_dead_letters(tmp_path, settings)
    assert audited["sealed"] == len(originals) and audited["suspect_records"] == 0
    assert audited["findings"] == [], "no raw PII in sealed dead letters"
    assert read_summary(settings, keys).to_dict()["sealed"] == {"dlq v1": len(originals)}

    report = replay_all(settings, keys)
    assert sum(report.replayed.values()) == len(originals)
    replayed = {r.key: r.value for r in read_replayed(raw, len(originals))}
    assert replayed == originals, "replay unseals to the original key and value bytes"

    # erasure: after a rotation the old version is destroyed; its dead letters no longer open
    erased = keys.rotate("dlq").without_version("dlq", 1)
    report = replay_all(settings, erased, group=unique("other-replay"))
    assert sum(report.replayed.values()) == 0 and report.passed["skipped"] == len(originals)
    assert all("which the keys file does not hold" in m for m in report.messages)
    problems = read_summary(settings, erased).problems
    assert len(problems) == len(originals)
