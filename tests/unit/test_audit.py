"""The audit's counting and reporting, without Kafka: detectors plus a stand-in for the NER scanner."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from stream_anon.audit import Auditor

SCHEMA = {
    "type": "record",
    "name": "Out",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "comment", "type": "string"},
        {"name": "attrs", "type": {"type": "map", "values": "string"}},
        {"name": "token", "type": "string"},
    ],
}


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    entity: str
    score: float = 0.85


class NamesScanner:
    """Finds the given names, as NER would; records what it was asked."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = names
        self.batches: list[int] = []

    def detect_batch(
        self,
        texts: Sequence[str],
        known: Sequence[Sequence[tuple[str, str]]],
        *,
        entities: frozenset[str] | None = None,
        threshold: float | None = None,
    ) -> list[list[Span]]:
        self.batches.append(len(texts))
        out = []
        for text in texts:
            spans = []
            for name in self.names:
                at = text.find(name)
                if at >= 0:
                    spans.append(Span(at, at + len(name), "PERSON"))
            out.append(spans)
        return out


def record(i: int, comment: str = "works fine", **attrs: str) -> dict[str, object]:
    return {"id": f"r{i}", "comment": comment, "attrs": attrs, "token": f"tok_{i:08x}"}


def test_counts_records_per_path_and_entity_with_masked_examples() -> None:
    scanner = NamesScanner(["Jane Whitfield"])
    auditor = Auditor("feedback.sanitized", scanner, batch_size=4)
    auditor.add(record(1, "mail jane.whitfield@example.com or jane@example.org"), SCHEMA)
    auditor.add(record(2, "Jane Whitfield called from +1 415 555 0132"), SCHEMA)
    auditor.add(record(3, contact="ops@example.net"), SCHEMA)
    for i in range(4, 11):
        auditor.add(record(i), SCHEMA)
    auditor.undecodable("unknown_schema")
    report = auditor.finish()

    assert report.records_read == 11
    assert report.decoded == 10
    assert report.undecodable == {"unknown_schema": 1}
    assert report.suspect_records == 3
    assert report.rate == 0.3
    by_key = {(f.path, f.entity): f for f in report.findings.values()}
    assert set(by_key) == {
        ("comment", "EMAIL_ADDRESS"),
        ("comment", "PERSON"),
        ("comment", "PHONE_NUMBER"),
        ("attrs{}", "EMAIL_ADDRESS"),
    }
    emails = by_key[("comment", "EMAIL_ADDRESS")]
    assert emails.records == 1  # two addresses, one record
    assert emails.examples == ["j***@e***.com", "j***@e***.org"]
    assert by_key[("comment", "PERSON")].examples == ["J*** W***"]
    assert by_key[("attrs{}", "EMAIL_ADDRESS")].records == 1
    assert sum(scanner.batches) == report.strings_scanned
    assert max(scanner.batches) <= 4 + 5  # a batch closes at the first record that fills it


def test_reports_never_show_a_whole_value() -> None:
    auditor = Auditor("t")
    auditor.add(record(1, "card 4111 1111 1111 1111, ip 198.51.100.23, ssn 078-05-1120"), SCHEMA)
    report = auditor.finish()
    for text in (report.to_table(0.0), report.to_json(0.0)):
        for value in ("4111 1111 1111 1111", "198.51.100.23", "078-05-1120"):
            assert value not in text
    assert "**** **** **** 1111" in report.to_table()


def test_at_most_three_examples_per_field_and_entity() -> None:
    auditor = Auditor("t")
    for i in range(6):
        auditor.add(record(i, f"{'abcdef'[i]}ser@{'klmnop'[i]}xample.com"), SCHEMA)
    [found] = auditor.finish().findings.values()
    assert found.records == 6
    assert len(found.examples) == 3


def test_ignored_paths_are_not_audited() -> None:
    auditor = Auditor("t", ignore_paths=frozenset({"comment"}))
    auditor.add(record(1, "jane@example.com"), SCHEMA)
    report = auditor.finish()
    assert report.suspect_records == 0
    assert report.strings_scanned == 2  # id and token; the map is empty and comment skipped


def test_json_report_and_verdict() -> None:
    auditor = Auditor("t")
    auditor.add(record(1, "jane@example.com"), SCHEMA)
    auditor.add(record(2), SCHEMA)
    report = auditor.finish()
    data = json.loads(report.to_json(fail_above=0.4))
    assert data["rate"] == 0.5
    assert data["passed"] is False
    assert data["findings"] == [
        {
            "path": "comment",
            "entity": "EMAIL_ADDRESS",
            "records": 1,
            "rate": 0.5,
            "examples": ["j***@e***.com"],
        }
    ]
    assert "FAIL" in report.to_table(0.4)
    assert "PASS" in report.to_table(0.5)
    assert data["ner"] is False


def test_an_empty_topic_has_a_zero_rate() -> None:
    report = Auditor("t").finish()
    assert report.rate == 0.0
    assert "no suspected leaks" in report.to_table(0.0)
