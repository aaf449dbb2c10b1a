"""Misconfigured security fails at start-up with a clear error and exit 2, and no secret in any log line:
a wrong password, an untrusted or expired CA certificate, TLS to a plaintext port."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from clusterkit import CLIENTS, RUN, Scenario, grant, run_worker, worker_acls
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from kafkatools import BOOTSTRAP as PLAINTEXT_BROKER


def ca_certificate(key: Any, not_before: datetime.datetime, not_after: datetime.datetime) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stream-anon test CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def untrusted_ca(tmp: Path, settings: dict[str, Any]) -> None:
    """A CA of the same name that did not sign the brokers' certificate."""
    now = datetime.datetime.now(datetime.UTC)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp / "other-ca.pem"
    path.write_bytes(ca_certificate(key, now - datetime.timedelta(days=1), now + datetime.timedelta(days=1)))
    settings["ssl.ca.location"] = str(path)


def expired_ca(tmp: Path, settings: dict[str, Any]) -> None:
    """The cluster's own CA (same key and name) with a validity that ended yesterday."""
    key = serialization.load_pem_private_key((RUN / "tls" / "ca.key").read_bytes(), password=None)
    now = datetime.datetime.now(datetime.UTC)
    path = tmp / "expired-ca.pem"
    path.write_bytes(ca_certificate(key, now - datetime.timedelta(days=30), now - datetime.timedelta(days=1)))
    settings["ssl.ca.location"] = str(path)


def wrong_password(_tmp: Path, settings: dict[str, Any]) -> None:
    settings["sasl.password"] = "not-the-" + str(settings["sasl.password"])


def tls_to_plaintext_port(_tmp: Path, settings: dict[str, Any]) -> None:
    settings["bootstrap.servers"] = PLAINTEXT_BROKER


CASES: dict[str, tuple[Callable[[Path, dict[str, Any]], None], tuple[str, ...]]] = {
    # what the error names, in librdkafka's words (any one of them)
    "wrong-password": (wrong_password, ("Authentication failed", "invalid credentials")),
    "untrusted-ca": (untrusted_ca, ("certificate verify failed", "unable to get local issuer")),
    "expired-ca": (expired_ca, ("certificate has expired", "certificate verify failed")),
    "tls-to-plaintext": (tls_to_plaintext_port, ("SSL handshake failed", "security.protocol")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_security_misconfiguration_is_a_clear_startup_error(tmp_path: Path, case: str) -> None:
    s = Scenario.create(tmp_path, connect_timeout_s=10)
    grant(*worker_acls(s.config))
    secrets: dict[str, Any] = yaml.safe_load((CLIENTS / "worker.librdkafka.yaml").read_text())
    real_password = str(secrets["sasl.password"])
    break_it, expected = CASES[case]
    break_it(tmp_path, secrets)
    secrets_file = tmp_path / "secrets.yaml"
    secrets_file.write_text(yaml.safe_dump(secrets))
    config = yaml.safe_load(s.config.read_text())
    config["kafka_secrets_file"] = str(secrets_file)
    s.config.write_text(yaml.safe_dump(config))

    done = run_worker(s.config, 90)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    error = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert error and "cannot reach Kafka" in error[-1], output
    assert any(words in error[-1] for words in expected), error[-1]
    for secret in {real_password, str(secrets["sasl.password"])}:
        assert secret not in output, "a password appears in the worker's output"
