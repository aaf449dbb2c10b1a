"""The registry client's configuration and subject naming (its answers are tested against the real
registry in tests/broker/test_registry_errors.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_anon.config import ConfigError, RegistrySettings
from stream_anon.registry import SubjectNameStrategy, client_config, derived_subject

DERIVED = {"type": "record", "name": "Feedback", "namespace": "com.example.feedback", "fields": []}


@pytest.mark.parametrize(
    ("strategy", "subject"),
    [
        (SubjectNameStrategy.TOPIC_NAME, "feedback.sanitized-value"),
        (SubjectNameStrategy.RECORD_NAME, "com.example.feedback.Feedback"),
        (SubjectNameStrategy.TOPIC_RECORD_NAME, "feedback.sanitized-com.example.feedback.Feedback"),
    ],
)
def test_subject_names_follow_confluents_strategies(strategy: SubjectNameStrategy, subject: str) -> None:
    assert derived_subject(strategy, "feedback.sanitized", DERIVED) == subject


def test_a_record_without_namespace_is_named_by_its_name_alone() -> None:
    plain = {"type": "record", "name": "Ticket", "fields": []}
    assert derived_subject(SubjectNameStrategy.RECORD_NAME, "t", plain) == "Ticket"


def test_client_configuration_carries_auth_and_tls(tmp_path: Path) -> None:
    password = tmp_path / "password"
    password.write_text("s3cret\n")
    options = RegistrySettings(
        username="worker",
        password_file=password,
        ca_location=tmp_path / "ca.crt",
        certificate_location=tmp_path / "tls.crt",
        key_location=tmp_path / "tls.key",
        timeout_s=4,
    )
    conf = client_config("https://registry:8081", options)
    assert conf["basic.auth.user.info"] == "worker:s3cret"
    assert conf["ssl.ca.location"] == str(tmp_path / "ca.crt")
    assert conf["ssl.certificate.location"] == str(tmp_path / "tls.crt")
    assert conf["ssl.key.location"] == str(tmp_path / "tls.key")
    assert conf["timeout"] == 4
    # one attempt per call: the worker retries with its own backoff, so its loop never sleeps in the client
    assert conf["max.retries"] == 0


def test_a_missing_password_file_is_a_configuration_error(tmp_path: Path) -> None:
    options = RegistrySettings(username="worker", password_file=tmp_path / "nope")
    with pytest.raises(ConfigError, match="password_file"):
        client_config("https://registry:8081", options)
