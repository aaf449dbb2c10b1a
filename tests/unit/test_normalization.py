"""Text is read normalized (NFKC, zero-width characters removed) by the scan and the verifier (issue 22,
item 7): a copy of a value that only looks different to a pattern is the value."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import fastavro
import pytest
from click.testing import CliRunner

from stream_anon.cli import main
from stream_anon.detection.scanner import Scanner
from stream_anon.detection.spans import replace_spans
from stream_anon.detection.text import normalize
from stream_anon.keys import Keys
from stream_anon.verify import Verifier

FULL_WIDTH_EMAIL = "ｊｏｈｎ＠ｅｘａｍｐｌｅ．ｃｏｍ"  # NFKC: john@example.com
ZERO_WIDTH_EMAIL = "jo\u200bhn@example.com"
COMBINING_NAME = "Zoe\u0308"  # "Zoë" written with a combining diaeresis
DISGUISED = [FULL_WIDTH_EMAIL, ZERO_WIDTH_EMAIL]


def test_normalize_maps_spans_back_to_the_text_as_written() -> None:
    text = f"mail {ZERO_WIDTH_EMAIL} or {FULL_WIDTH_EMAIL}, {COMBINING_NAME}!"
    norm = normalize(text)
    assert norm.text == "mail john@example.com or john@example.com, Zoë!"
    first = norm.text.index("john")
    assert text[slice(*norm.span(first, first + 16))] == ZERO_WIDTH_EMAIL
    second = norm.text.index("john", first + 1)
    assert text[slice(*norm.span(second, second + 16))] == FULL_WIDTH_EMAIL
    name = norm.text.index("Zoë")
    assert text[slice(*norm.span(name, name + 3))] == COMBINING_NAME


def test_ascii_and_already_normal_text_is_not_copied() -> None:
    for text in ("plain ascii", "Zoë Łukasz 山田"):
        norm = normalize(text)
        assert norm.text is text and norm.starts is None


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner()


@pytest.mark.parametrize("written", [FULL_WIDTH_EMAIL, ZERO_WIDTH_EMAIL])
def test_scan_removes_a_disguised_email_whole(scanner: Scanner, written: str) -> None:
    text = f"please write to {written} today"
    for known in ([], [("EMAIL_ADDRESS", "john@example.com")]):
        [spans] = scanner.detect_batch([text], [known])
        assert replace_spans(text, spans, "tag") == "please write to <EMAIL_ADDRESS> today"


def test_scan_finds_a_name_part_written_with_a_combining_mark(scanner: Scanner) -> None:
    text = f"ask {COMBINING_NAME.lower()} about it"
    [spans] = scanner.detect_batch([text], [[("PERSON", "Zoë Adeyemi")]])
    assert replace_spans(text, spans, "tag") == "ask <PERSON> about it"


SCHEMA = {
    "type": "record",
    "name": "Note",
    "fields": [{"name": "note", "type": "string"}, {"name": "token", "type": "string"}],
}


class Plan:
    generated_paths: frozenset[str] = frozenset({"token"})
    pii_getters: None = None  # lists its values only (pii_values), does not say where it reads them
    parsed_derived: Any = fastavro.parse_schema(copy.deepcopy(SCHEMA))

    def __init__(self, email: str, name: str) -> None:
        self.values = [("EMAIL_ADDRESS", "email", email), ("PERSON", "name", name)]

    def pii_values(self, record: dict[str, Any]) -> list[tuple[str, str, str]]:
        return self.values


@pytest.mark.parametrize(
    ("note", "entity"),
    [
        (f"contact {FULL_WIDTH_EMAIL}", "EMAIL_ADDRESS"),
        (f"contact {ZERO_WIDTH_EMAIL}", "EMAIL_ADDRESS"),
        (f"signed {COMBINING_NAME.lower()} okafor", "PERSON"),  # the verifier searches whole names
    ],
)
def test_the_verifier_reads_strings_normalized(note: str, entity: str) -> None:
    plan = Plan("john@example.com", "Zoë Okafor")
    record = {"note": note, "token": "tok_1"}
    result = Verifier().check(plan, {}, record)
    assert [leak.entity for leak in result.leaks] == [entity]
    redacted = Verifier("redact").check(plan, {}, {"note": note, "token": "tok_1"}).record
    assert redacted["note"] == f"{note.split(' ')[0]} <{entity}>"


def test_anonymize_removes_disguised_emails_from_free_text_whole(tmp_path: Path) -> None:
    # Issue 22 item 7 as found, through file mode with the default configuration: the zero-width copy
    # kept "jo", the full-width one was kept whole.
    schema = tmp_path / "note.avsc"
    schema.write_text(
        json.dumps(
            {
                "type": "record",
                "name": "N",
                "fields": [{"name": "c", "type": "string", "anon": {"op": "scan"}}],
            }
        )
    )
    keys = tmp_path / "keys.json"
    Keys.generate().save(keys)
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps({"c": f"write to {w} today"}) + "\n" for w in DISGUISED))
    out = tmp_path / "out.jsonl"
    args = [
        "anonymize",
        "--schema",
        str(schema),
        "--keys",
        str(keys),
        "--input",
        str(data),
        "--output",
        str(out),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["c"] for line in out.read_text().splitlines()] == [
        "write to <EMAIL_ADDRESS> today"
    ] * len(DISGUISED)


def test_anonymize_finds_the_records_name_written_with_a_combining_mark(tmp_path: Path) -> None:
    fields = [
        {"name": "name", "type": "string", "pii": "PERSON", "anon": "hmac"},
        {"name": "c", "type": "string", "anon": {"op": "scan"}},
    ]
    schema = tmp_path / "note.avsc"
    schema.write_text(json.dumps({"type": "record", "name": "N", "fields": fields}))
    keys = tmp_path / "keys.json"
    Keys.generate().save(keys)
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps({"name": "Zoë Adeyemi", "c": f"ask {COMBINING_NAME.lower()} about it"}) + "\n")
    out, dlq = tmp_path / "out.jsonl", tmp_path / "dlq.jsonl"
    args = ["anonymize", "--schema", str(schema), "--keys", str(keys), "--input", str(data)]
    result = CliRunner().invoke(main, [*args, "--output", str(out), "--dlq", str(dlq)])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["c"] for line in out.read_text().splitlines()] == ["ask <PERSON> about it"]
