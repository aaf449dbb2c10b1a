"""The Helm chart takes Kafka credentials and the brokers' CA only from existing Secrets.

Rendered with the real helm (.cache/bin/helm, built by scripts/check-deploy.sh): secret material in values
makes the chart fail with a message that says what to do instead, and the README's secured release mounts
the Secrets where the rendered config.yaml points the worker, which then reads them from there.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from helmtools import CHART, HELM, helm_template, render

from stream_anon.config import _SECRET_KAFKA_KEYS, load_settings

SECURED = CHART / "ci" / "secured-values.yaml"
MOUNT_ROOT = "/etc/stream-anon"


@pytest.fixture(autouse=True)
def helm() -> None:
    if not HELM.exists():
        pytest.skip(f"{HELM} is missing: scripts/check-deploy.sh builds it (CI runs that before the tests)")


def refusal(tmp_path: Path, values: dict[str, Any]) -> str:
    """helm's error for values the chart must refuse; fails the test when it renders."""
    file = tmp_path / "values.yaml"
    file.write_text(yaml.safe_dump(values), encoding="utf-8")
    done = helm_template("-f", str(SECURED), "-f", str(file))
    assert done.returncode != 0, f"the chart rendered with {values}"
    assert done.stdout == ""
    return done.stderr


SECRET_KEYS = sorted(
    {
        *_SECRET_KAFKA_KEYS,  # the keys the worker redacts from its logs
        "ssl.key.pem",
        "ssl.certificate.pem",
        "ssl_key",
        "sasl.jaas.config",
        "sasl.oauthbearer.config",
        "sasl.oauthbearer.assertion.private.key.passphrase",
    }
)


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_a_secret_in_the_kafka_mapping_fails_the_render_and_says_where_it_belongs(
    tmp_path: Path, key: str
) -> None:
    error = refusal(tmp_path, {"config": {"kafka": {key: "not-in-values"}}})
    assert f"config.kafka.{key} is a secret and must not be in values" in error
    assert "kafkaSecrets.existingSecret" in error
    assert "not-in-values" not in error


def test_the_removed_inline_credentials_fail_the_render(tmp_path: Path) -> None:
    error = refusal(tmp_path, {"kafkaSecrets": {"content": {"sasl.password": "not-in-values"}}})
    assert "kafkaSecrets.content is not accepted: Kafka credentials never come from values" in error
    assert "kubectl create secret generic" in error


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"config": {"kafka": {"ssl.ca.pem": "PEM"}}}, "config.kafka.ssl.ca.pem: the brokers' CA comes from"),
        ({"kafkaTls": {"content": "PEM"}}, "kafkaTls.content is not accepted"),
        ({"config": {"kafka": {"ssl.ca.location": "/x.pem"}}}, "ssl.ca.location is set by the chart"),
    ],
)
def test_an_inline_or_second_truststore_fails_the_render(
    tmp_path: Path, values: dict[str, Any], message: str
) -> None:
    assert message in refusal(tmp_path, values)


def readme_secured_values() -> dict[str, Any]:
    readme = (CHART / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n# secured-values.yaml\n(.*?)```", readme, re.S)
    assert block, "the README has no secured-values.yaml example"
    loaded: dict[str, Any] = yaml.safe_load(block.group(1))
    return loaded


def test_the_readme_example_is_the_values_file_ci_renders() -> None:
    assert readme_secured_values() == yaml.safe_load(SECURED.read_text(encoding="utf-8"))


def test_the_secured_release_mounts_the_secrets_where_the_worker_reads_them(tmp_path: Path) -> None:
    values = readme_secured_values()
    manifests = render("-f", str(SECURED), "--set", "audit.enabled=true")
    rendered = yaml.safe_dump_all(manifests)
    assert not [m for m in manifests if m["kind"] == "Secret"], "the chart made a Secret of its own"
    assert "sasl.password" not in rendered
    config_map = next(
        m for m in manifests if m["kind"] == "ConfigMap" and "config.yaml" in (m.get("data") or {})
    )
    config_text = config_map["data"]["config.yaml"]
    config = yaml.safe_load(config_text)
    secrets_file = f"{MOUNT_ROOT}/kafka-secrets/secrets.yaml"
    ca_file = f"{MOUNT_ROOT}/kafka-tls/ca.crt"
    assert config["kafka_secrets_file"] == secrets_file
    assert config["kafka"] == {**values["config"]["kafka"], "ssl.ca.location": ca_file}

    templates = [m["spec"]["template"] for m in manifests if m["kind"] == "Deployment"]
    templates += [m["spec"]["jobTemplate"]["spec"]["template"] for m in manifests if m["kind"] == "CronJob"]
    assert len(templates) == 2  # the workers and the audit
    for template in templates:
        volumes = {v["name"]: v for v in template["spec"]["volumes"]}
        assert volumes["kafka-secrets"]["secret"]["secretName"] == "stream-anon-kafka"
        assert volumes["kafka-tls"]["secret"]["secretName"] == "kafka-cluster-ca"
        assert volumes["kafka-tls"]["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]
        container = template["spec"]["containers"][0]
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        for name, file in (("kafka-secrets", secrets_file), ("kafka-tls", ca_file)):
            assert mounts[name]["readOnly"] is True
            assert file == f"{mounts[name]['mountPath']}/{Path(file).name}"
        assert not [
            e for e in container.get("env", []) if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]
        ]

    # The worker, given the Secrets' files at those paths, connects with the password and the CA.
    root = tmp_path / "etc"
    (root / "kafka-secrets").mkdir(parents=True)
    (root / "kafka-tls").mkdir()
    (root / "kafka-secrets" / "secrets.yaml").write_text('sasl.password: "from-the-secret"\n')
    (root / "kafka-tls" / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    local = yaml.safe_load(config_text.replace(MOUNT_ROOT, str(root)))
    local = {k: v for k, v in local.items() if k not in ("schemas_dir", "keys_file")}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(local))
    kafka = load_settings(tmp_path / "config.yaml").librdkafka()
    assert kafka["sasl.password"] == "from-the-secret"
    assert kafka["ssl.ca.location"] == str(root / "kafka-tls" / "ca.crt")
    assert kafka["sasl.username"] == "stream-anon"
    assert kafka["security.protocol"] == "SASL_SSL"
