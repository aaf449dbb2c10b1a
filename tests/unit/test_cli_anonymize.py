"""``stream-anon anonymize``: the worker's engine on JSON Lines; failures go to --dlq, never to the output."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from stream_anon.cli import main
from stream_anon.keys import Keys

SCHEMA = {
    "type": "record",
    "name": "Ticket",
    "fields": [
        {"name": "id", "type": "string", "anon": "keep"},
        {
            "name": "email",
            "type": ["null", "string"],
            "pii": "EMAIL_ADDRESS",
            "anon": {"op": "hmac", "normalize": "lower"},
        },
        {"name": "ip", "type": "string", "anon": {"op": "generalize", "method": "ip_prefix"}},
        {"name": "note", "type": "string", "anon": "keep"},
    ],
}


def files(tmp_path: Path, lines: list[str]) -> tuple[Path, Path, Path]:
    schema = tmp_path / "ticket.avsc"
    schema.write_text(json.dumps(SCHEMA))
    keys = tmp_path / "keys.json"
    Keys.generate().save(keys)
    data = tmp_path / "in.jsonl"
    data.write_text("\n".join(lines) + "\n")
    return schema, keys, data


def test_sanitized_records_and_dead_letters_are_separated(tmp_path: Path) -> None:
    good = {"id": "1", "email": "Jane@Example.com", "ip": "203.0.113.9", "note": "ok"}
    lines = [
        json.dumps(good),
        json.dumps({**good, "id": "2", "email": None}),
        "{not json",
        json.dumps({"id": "3"}),  # missing fields: does not match the schema
        json.dumps({**good, "id": "4", "ip": "nope"}),  # the rule raises
        json.dumps({**good, "id": "5", "note": "mail jane@example.com"}),  # the verifier catches it
    ]
    schema, keys, data = files(tmp_path, lines)
    out, dlq = tmp_path / "out.jsonl", tmp_path / "dlq.jsonl"
    result = CliRunner().invoke(
        main,
        [
            "anonymize",
            "--schema",
            str(schema),
            "--keys",
            str(keys),
            "--input",
            str(data),
            "--output",
            str(out),
            "--dlq",
            str(dlq),
        ],
    )
    assert result.exit_code == 1, result.output
    sanitized = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in sanitized] == ["1", "2"]
    assert sanitized[0]["email"].startswith("hm1.default.1.")
    assert sanitized[0]["ip"] == "203.0.113.0/24"
    assert sanitized[1]["email"] is None
    failed = [json.loads(line) for line in dlq.read_text().splitlines()]
    assert [(f["line"], f["reason"]) for f in failed] == [
        (3, "undecodable"),
        (4, "undecodable"),
        (5, "rule_failed"),
        (6, "leak_detected"),
    ]
    assert "jane" not in failed[3]["message"].lower()
    assert "6 record(s): 2 sanitized, 4 failed" in result.output


def test_the_same_email_gets_the_same_pseudonym_whatever_its_case(tmp_path: Path) -> None:
    rec = {"id": "1", "email": "Jane@Example.com", "ip": "203.0.113.9", "note": "ok"}
    schema, keys, data = files(tmp_path, [json.dumps(rec), json.dumps({**rec, "email": "jane@example.COM "})])
    result = CliRunner().invoke(
        main, ["anonymize", "--schema", str(schema), "--keys", str(keys), "--input", str(data)]
    )
    assert result.exit_code == 0
    first, second = (json.loads(line) for line in result.stdout.splitlines() if line.startswith("{"))
    assert first["email"] == second["email"]


def test_a_schema_with_an_unannotated_field_is_refused_with_its_path(tmp_path: Path) -> None:
    schema = tmp_path / "s.avsc"
    schema.write_text(
        json.dumps({**SCHEMA, "fields": [*SCHEMA["fields"], {"name": "phone", "type": "string"}]})
    )
    result = CliRunner().invoke(main, ["anonymize", "--schema", str(schema)], input="")
    assert result.exit_code == 2
    assert "phone" in result.output and "unannotated_field" in result.output


def test_help_is_complete_for_every_command() -> None:
    runner = CliRunner()
    top = runner.invoke(main, ["--help"])
    assert top.exit_code == 0
    for command in ("run", "anonymize", "demo", "audit", "lint", "catalog", "schemas", "keys", "detokenize"):
        assert command in top.output
        sub = runner.invoke(main, [command, "--help"])
        assert sub.exit_code == 0, command
        assert "Usage:" in sub.output


BINARY = {
    "type": "record",
    "name": "Blob",
    "namespace": "t",
    "fields": [
        {"name": "email", "type": "string", "pii": "EMAIL_ADDRESS", "anon": "hmac"},
        {"name": "raw", "type": "bytes", "anon": "keep"},
        {"name": "tag", "type": {"type": "fixed", "name": "Tag", "size": 2}, "anon": "keep"},
        {
            "name": "amount",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 2},
            "anon": "keep",
        },
        {
            "name": "wait",
            "type": {"type": "fixed", "name": "Wait", "size": 12, "logicalType": "duration"},
            "anon": "keep",
        },
        {"name": "maybe", "type": ["null", "bytes"], "anon": "keep"},
    ],
}


def test_bytes_fixed_decimal_and_duration_have_a_json_form_in_file_mode(tmp_path: Path) -> None:
    # Issue 22 item 6: every such record was undecodable; and a kept bytes copy of the email leaked.
    schema = tmp_path / "blob.avsc"
    schema.write_text(json.dumps(BINARY))
    keys = tmp_path / "keys.json"
    Keys.generate().save(keys)
    good = {
        "email": "jo@example.com",
        "raw": "\u00ff\u0000abc",
        "tag": "\u0001\u00fe",
        "amount": "\u0004\u00d2",
        "wait": "\u0000" * 11 + "\u0005",
        "maybe": "x",
    }
    leaky = {**good, "raw": "mail jo@example.com"}
    data = tmp_path / "in.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in (good, leaky, {**good, "raw": "\u0100"})) + "\n")
    dlq = tmp_path / "dlq.jsonl"
    result = CliRunner().invoke(
        main,
        ["anonymize", "--schema", str(schema), "--keys", str(keys), "--input", str(data), "--dlq", str(dlq)],
    )
    (out,) = (json.loads(line) for line in result.stdout.splitlines() if line.startswith("{"))
    assert {k: v for k, v in out.items() if k != "email"} == {k: v for k, v in good.items() if k != "email"}
    assert out["email"].startswith("hm1.")
    reasons = [json.loads(line)["reason"] for line in dlq.read_text().splitlines()]
    assert sorted(reasons) == ["leak_detected", "undecodable"]  # a character above U+00FF is not a byte
