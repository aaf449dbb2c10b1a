"""Keys files and the commands over schemas and keys: lint, catalog, derive, keys, detokenize."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from stream_anon.cli import main
from stream_anon.keys import Keys, KeysError

REPO = Path(__file__).resolve().parents[2]


def test_generated_keys_files_are_private_and_group_readable_ones_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    result = CliRunner().invoke(main, ["keys", "generate", "--output", str(path)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Keys.load(path).active("default")[0] == 1
    path.chmod(0o640)
    with pytest.raises(KeysError, match="chmod 600"):
        Keys.load(path)


def test_rotation_adds_an_active_version_and_keeps_the_old_one(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    runner = CliRunner()
    runner.invoke(main, ["keys", "generate", "--output", str(path)])
    schema = tmp_path / "s.avsc"
    schema.write_text(
        json.dumps(
            {"type": "record", "name": "S", "fields": [{"name": "d", "type": "string", "anon": "tokenize"}]}
        )
    )
    first = runner.invoke(
        main, ["anonymize", "--schema", str(schema), "--keys", str(path)], input='{"d": "dev-1"}\n'
    )
    token = json.loads(first.stdout.splitlines()[0])["d"]
    assert runner.invoke(main, ["keys", "rotate", str(path)]).exit_code == 0
    keys = Keys.load(path)
    assert keys.versions("default") == [1, 2] and keys.active("default")[0] == 2
    second = runner.invoke(
        main, ["anonymize", "--schema", str(schema), "--keys", str(path)], input='{"d": "dev-1"}\n'
    )
    assert json.loads(second.stdout.splitlines()[0])["d"].startswith("tk1.default.2.")
    back = runner.invoke(main, ["detokenize", "--keys", str(path), token])
    assert back.exit_code == 0 and back.stdout.strip() == "dev-1", "old tokens still reverse after rotation"
    bad = runner.invoke(main, ["detokenize", "--keys", str(path), token[:-3] + "xyz"])
    assert bad.exit_code == 1 and "does not verify" in bad.output


def test_generate_does_not_overwrite_secrets(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    runner = CliRunner()
    runner.invoke(main, ["keys", "generate", "--output", str(path)])
    before = path.read_text()
    assert runner.invoke(main, ["keys", "generate", "--output", str(path)]).exit_code == 1
    assert path.read_text() == before


def test_lint_reports_every_problem_with_its_path(tmp_path: Path) -> None:
    (tmp_path / "bad.avsc").write_text(
        json.dumps(
            {
                "type": "record",
                "name": "B",
                "fields": [
                    {"name": "phone", "type": "string"},
                    {"name": "age", "type": "int", "anon": "mask"},
                ],
            }
        )
    )
    result = CliRunner().invoke(main, ["lint", str(tmp_path), str(REPO / "schemas" / "feedback.avsc")])
    assert result.exit_code == 1
    assert "phone: unannotated_field" in result.output
    assert "age: invalid_rule" in result.output
    assert "2 schema(s), 2 problem(s)" in result.output
    assert CliRunner().invoke(main, ["lint", str(REPO / "schemas")]).exit_code == 0


def test_catalog_lists_path_type_entity_operation_and_derived_type() -> None:
    result = CliRunner().invoke(
        main, ["catalog", str(REPO / "schemas" / "feedback.avsc"), "--format", "json"]
    )
    assert result.exit_code == 0
    rows = {r["path"]: r for r in json.loads(result.stdout)}
    assert rows["user.email"]["entity"] == "EMAIL_ADDRESS"
    assert rows["user.email"]["operation"] == "hmac"
    assert rows["user.name"]["derived_type"] is None
    assert rows["ip_address"]["derived_type"] == "string"


def test_derive_prints_the_sanitized_schema_without_annotations() -> None:
    result = CliRunner().invoke(main, ["schemas", "derive", str(REPO / "schemas" / "feedback.avsc")])
    assert result.exit_code == 0
    derived = json.loads(result.stdout)
    assert '"anon"' not in result.stdout and '"pii"' not in result.stdout
    user = next(f for f in derived["fields"] if f["name"] == "user")
    assert "name" not in {f["name"] for f in user["type"]["fields"]}
