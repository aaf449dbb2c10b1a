"""Settings come from the file, and every key can be overridden by STREAM_ANON_<KEY>."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_anon.config import ConfigError, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_file_values_and_relative_paths(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, "group_id: g\nschemas_dir: schemas\ninput_topics: [a, b]\n"))
    assert s.group_id == "g"
    assert s.input_topics == ["a", "b"]
    assert s.schemas_dir == tmp_path / "schemas"


def test_environment_wins_over_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_ANON_GROUP_ID", "from-env")
    monkeypatch.setenv("STREAM_ANON_INPUT_TOPICS", "x, y")
    monkeypatch.setenv("STREAM_ANON_SCAN__THRESHOLD", "0.7")
    s = load_settings(write(tmp_path, "group_id: from-file\n"))
    assert (s.group_id, s.input_topics, s.scan.threshold) == ("from-env", ["x", "y"], 0.7)


def test_kafka_mapping_reaches_librdkafka_unchanged(tmp_path: Path) -> None:
    secrets = tmp_path / "kafka-secrets.yaml"
    secrets.write_text("sasl.password: s3cret\n")
    s = load_settings(
        write(
            tmp_path,
            "kafka:\n  security.protocol: SASL_SSL\n  sasl.mechanism: SCRAM-SHA-512\n"
            "  sasl.username: worker\n  ssl.ca.location: /etc/ca.pem\n"
            "kafka_secrets_file: kafka-secrets.yaml\n",
        )
    )
    conf = s.librdkafka()
    assert conf["security.protocol"] == "SASL_SSL"
    assert conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert conf["ssl.ca.location"] == "/etc/ca.pem"
    assert conf["sasl.password"] == "s3cret"
    assert "s3cret" not in str(s.redacted())


def test_a_registry_only_configuration_needs_no_schemas_directory(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, "schema_registry_url: http://registry:8081\n"))
    assert s.schemas_dir is None
    # without a registry the embedded default directory stays the default
    assert load_settings(write(tmp_path, "group_id: g\n")).schemas_dir == Path("schemas")


def test_a_worker_needs_a_schemas_directory_or_a_registry(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="schemas_dir or schema_registry_url"):
        load_settings(write(tmp_path, "schemas_dir: null\n"))


def test_registry_settings_and_their_relative_paths(tmp_path: Path) -> None:
    s = load_settings(
        write(
            tmp_path,
            "schema_registry_url: https://registry:8081\n"
            "schema_registry:\n  username: worker\n  password_file: secrets/registry-password\n"
            "  ca_location: tls/ca.crt\n  subject_name_strategy: record_name\n"
            "  auto_register_derived: false\n",
        )
    )
    options = s.schema_registry
    assert options.password_file == tmp_path / "secrets" / "registry-password"
    assert options.ca_location == tmp_path / "tls" / "ca.crt"
    assert (options.username, options.subject_name_strategy, options.auto_register_derived) == (
        "worker",
        "record_name",
        False,
    )


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("delivery: twice\n", "delivery"),
        ("unknown_key: 1\n", "unknown_key"),
        ("input_topics: []\n", "input_topics"),
        ("output_topic: feedback.raw\n", "differ"),
        ("- a list\n", "mapping"),
        ("schema_registry:\n  subject_name_strategy: by_luck\n", "subject_name_strategy"),
        ("schema_registry:\n  user: x\n", "user"),
    ],
)
def test_bad_configuration_is_a_clear_error(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text))
    assert words in str(caught.value)
