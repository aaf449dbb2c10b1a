"""Writer schemas resolve by fingerprint from a directory; hostile schemas are refused with a reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream_anon.schemas import DirectorySchemas, SchemaResolver, fingerprint, parse_writer_schema
from stream_anon.wire import Framing, WireError, WireErrorKind

V1 = {"type": "record", "name": "F", "namespace": "x", "fields": [{"name": "a", "type": "string"}]}
V2 = {**V1, "fields": [*V1["fields"], {"name": "b", "type": ["null", "int"], "default": None}]}


def test_directory_indexes_files_by_fingerprint(tmp_path: Path) -> None:
    (tmp_path / "f.avsc").write_text(json.dumps(V1))
    found = DirectorySchemas(tmp_path).lookup(fingerprint(V1))
    assert found.schema == V1
    assert found.ref == "fp:" + fingerprint(V1).hex()


def test_a_schema_added_later_is_found_without_restart(tmp_path: Path) -> None:
    (tmp_path / "f.avsc").write_text(json.dumps(V1))
    directory = DirectorySchemas(tmp_path)
    directory.RESCAN_INTERVAL_S = 0.0
    (tmp_path / "f-v2.avsc").write_text(json.dumps(V2))
    assert directory.lookup(fingerprint(V2)).schema == V2


def test_unknown_fingerprint_is_unknown_schema(tmp_path: Path) -> None:
    (tmp_path / "f.avsc").write_text(json.dumps(V1))
    with pytest.raises(WireError) as caught:
        DirectorySchemas(tmp_path).lookup(b"\x01" * 8)
    assert caught.value.kind is WireErrorKind.UNKNOWN_SCHEMA


def test_broken_files_are_skipped_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "bad.avsc").write_text("{not json")
    (tmp_path / "f.avsc").write_text(json.dumps(V1))
    assert [s.schema for s in DirectorySchemas(tmp_path).schemas()] == [V1]


@pytest.mark.parametrize(
    "hostile",
    [
        {"type": "record", "name": "X", "fields": [{"name": "a", "type": "file:///etc/passwd"}]},
        {"type": "record", "name": "X", "fields": [{"name": "a", "type": "http://example.com/s.avsc"}]},
        {"type": "string"},
        "[[[[",
    ],
)
def test_hostile_schemas_are_invalid_not_resolved(hostile: object) -> None:
    text = hostile if isinstance(hostile, str) else json.dumps(hostile)
    with pytest.raises(WireError) as caught:
        parse_writer_schema(text, ref="id:1")
    assert caught.value.kind is WireErrorKind.INVALID_SCHEMA


def test_confluent_framing_without_a_registry_is_unknown_schema(tmp_path: Path) -> None:
    resolver = SchemaResolver(DirectorySchemas(tmp_path), None)
    with pytest.raises(WireError) as caught:
        resolver.lookup(Framing.CONFLUENT, b"\x00\x00\x00\x01")
    assert caught.value.kind is WireErrorKind.UNKNOWN_SCHEMA
