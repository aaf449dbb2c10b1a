"""The least-privilege ACL sets computed from the settings, and `stream-anon acls` printing them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from confluent_kafka import KafkaError

from stream_anon.acls import reader_acls, refused, replay_acls, worker_acls
from stream_anon.cli import main
from stream_anon.config import Settings


def settings(**overrides: object) -> Settings:
    base: dict[str, object] = {
        "input_topics": ["orders.raw", "tickets.raw"],
        "output_topic": "all.sanitized",
        "dlq_topic": "all.dlq",
        "group_id": "anon",
    }
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


def rights(s: Settings) -> set[tuple[str, str, str, str]]:
    return {(a.resource_type, a.resource_name, a.pattern, a.operation) for a in worker_acls(s, "User:w")}


def test_a_transactional_worker_reads_its_inputs_and_group_and_writes_its_outputs_and_ids() -> None:
    assert rights(settings()) == {
        ("TOPIC", "orders.raw", "LITERAL", "READ"),
        ("TOPIC", "tickets.raw", "LITERAL", "READ"),
        ("GROUP", "anon", "LITERAL", "READ"),
        ("TOPIC", "all.sanitized", "LITERAL", "WRITE"),
        ("TOPIC", "all.dlq", "LITERAL", "WRITE"),
        # one transactional id per pod, <group_id>-<host>: granted by prefix
        ("TRANSACTIONAL_ID", "anon-", "PREFIXED", "WRITE"),
    }


def test_a_configured_transactional_id_is_granted_literally_and_at_least_once_needs_none() -> None:
    assert ("TRANSACTIONAL_ID", "anon-pod-0", "LITERAL", "WRITE") in rights(
        settings(transactional_id="anon-pod-0")
    )
    assert not any(r[0] == "TRANSACTIONAL_ID" for r in rights(settings(delivery="at_least_once")))


def test_the_reader_gets_the_sanitized_topic_only_and_never_the_workers_group() -> None:
    entries = reader_acls(settings(), "User:analytics", "analytics-")
    assert {(a.resource_type, a.resource_name, a.pattern, a.operation) for a in entries} == {
        ("TOPIC", "all.sanitized", "LITERAL", "READ"),
        ("GROUP", "analytics-", "PREFIXED", "READ"),
    }
    with pytest.raises(ValueError, match="worker's group"):
        reader_acls(settings(), "User:analytics", "an")
    with pytest.raises(ValueError, match="replay's group 'analytics-replay'"):
        reader_acls(settings(), "User:analytics", "analytics-", replay_group="analytics-replay")


def test_the_replay_reads_the_dead_letters_and_writes_only_the_input_topics_in_its_transaction() -> None:
    entries = replay_acls(settings(), "User:ops", "anon-dlq-replay")
    assert {a.principal for a in entries} == {"User:ops"}
    assert {(a.resource_type, a.resource_name, a.pattern, a.operation) for a in entries} == {
        ("TOPIC", "all.dlq", "LITERAL", "READ"),
        ("GROUP", "anon-dlq-replay", "LITERAL", "READ"),
        # a replay writes a dead letter back to its source topic, and only to the worker's input topics
        ("TOPIC", "orders.raw", "LITERAL", "WRITE"),
        ("TOPIC", "tickets.raw", "LITERAL", "WRITE"),
        # the transactional id of `dlq replay` is its group
        ("TRANSACTIONAL_ID", "anon-dlq-replay", "LITERAL", "WRITE"),
    }
    # nothing on the sanitized topic, nothing to write on the dead-letter topic
    assert not [a for a in entries if a.resource_name == "all.sanitized"]
    assert not [a for a in entries if a.resource_name == "all.dlq" and a.operation == "WRITE"]


def test_the_command_prints_the_replays_rights_for_its_default_or_given_group(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"input_topics": ["in"], "dlq_topic": "dlq", "group_id": "anon"}))
    runner = CliRunner()
    base = ["acls", "--config", str(config), "--reader-principal", "", "--format", "json"]
    entries = json.loads(runner.invoke(main, base).output)
    assert {e["principal"] for e in entries} == {"User:stream-anon"}  # left out unless asked for
    result = runner.invoke(main, [*base, "--replay-principal", "User:ops"])
    assert result.exit_code == 0, result.output
    replay = {
        (e["resource_type"], e["resource_name"], e["operation"])
        for e in json.loads(result.output)
        if e["principal"] == "User:ops"
    }
    assert replay == {
        ("TOPIC", "dlq", "READ"),
        ("GROUP", "anon-dlq-replay", "READ"),  # the default of `dlq replay --group`
        ("TOPIC", "in", "WRITE"),
        ("TRANSACTIONAL_ID", "anon-dlq-replay", "WRITE"),
    }
    given = json.loads(
        runner.invoke(main, [*base, "--replay-principal", "User:ops", "--replay-group", "triage-1"]).output
    )
    assert {e["resource_name"] for e in given if e["principal"] == "User:ops"} == {"dlq", "in", "triage-1"}
    same = runner.invoke(main, [*base, "--replay-principal", "User:stream-anon"])
    assert same.exit_code == 2 and "would let the worker write the raw topics" in same.output
    worker_group = runner.invoke(main, [*base, "--replay-principal", "User:ops", "--replay-group", "anon"])
    assert worker_group.exit_code == 2 and "is the worker's group" in worker_group.output


def test_a_refusal_names_the_missing_right() -> None:
    s = settings()
    assert "WRITE on TOPIC 'all.dlq'" in refused(s, KafkaError.TOPIC_AUTHORIZATION_FAILED, "all.dlq")
    assert "READ on GROUP 'anon'" in refused(s, KafkaError.GROUP_AUTHORIZATION_FAILED)
    assert "WRITE on TRANSACTIONAL_ID 'anon-' (prefix)" in refused(
        s, KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    )


def test_the_command_prints_json_and_kafka_acls_commands(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"input_topics": ["in"], "output_topic": "out", "dlq_topic": "dlq"}))
    runner = CliRunner()
    result = runner.invoke(
        main, ["acls", "--config", str(config), "--principal", "User:w", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    entries = json.loads(result.output)
    assert {(e["principal"], e["resource_name"], e["operation"]) for e in entries} >= {
        ("User:w", "in", "READ"),
        ("User:w", "out", "WRITE"),
        ("User:analytics", "out", "READ"),
    }
    assert all(e["permission"] == "ALLOW" and e["why"] for e in entries)
    text = runner.invoke(main, ["acls", "--config", str(config), "--reader-principal", ""]).output
    commands = [line for line in text.splitlines() if line.startswith("kafka-acls.sh")]
    assert len(commands) == 5
    assert "--operation Read --topic in" in text
    assert "--transactional-id stream-anon- --resource-pattern-type prefixed" in text
    assert "User:analytics" not in text
    bad = runner.invoke(main, ["acls", "--config", str(config), "--principal", "worker"])
    assert bad.exit_code == 2 and "User:NAME" in bad.output
