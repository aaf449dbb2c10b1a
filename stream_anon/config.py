"""Settings: one YAML file, every key overridable by an environment variable ``STREAM_ANON_<KEY>``.

Precedence, highest first: environment, the configuration file, the defaults below. Nested keys are
reached with a double underscore (``STREAM_ANON_SCAN__THRESHOLD=0.6``).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from stream_anon.detection.settings import ScanSettings


class ConfigError(Exception):
    """The configuration cannot be used; the message says which key and why."""


class RegistrySettings(BaseModel):
    """The Schema Registry client (with ``schema_registry_url``) and where the derived schema goes."""

    model_config = ConfigDict(extra="forbid")

    username: str | None = None
    password_file: Path | None = None
    ca_location: Path | None = None
    certificate_location: Path | None = None
    key_location: Path | None = None
    timeout_s: float = Field(10.0, gt=0)
    subject_name_strategy: Literal["topic_name", "record_name", "topic_record_name"] = "topic_name"
    auto_register_derived: bool = True


_SECRET_KAFKA_KEYS = (
    "sasl.password",
    "ssl.key.password",
    "ssl.keystore.password",
    "sasl.oauthbearer.client.secret",
)


class Settings(BaseSettings):
    """Everything the worker and the other commands read from their configuration."""

    model_config = SettingsConfigDict(
        env_prefix="STREAM_ANON_", env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    bootstrap_servers: str = "127.0.0.1:9092"
    group_id: str = "stream-anon"
    input_topics: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["feedback.raw"])
    output_topic: str = "feedback.sanitized"
    dlq_topic: str = "feedback.dlq"
    dlq_encryption_required: bool = False
    dlq_max_replays: int = Field(3, ge=0)
    # unset: "schemas" when no registry is configured (a registry-only worker needs no directory)
    schemas_dir: Path | None = None
    schema_registry_url: str | None = None
    schema_registry: RegistrySettings = Field(default_factory=RegistrySettings)
    keys_file: Path | None = None
    tag_policy_file: Path | None = None
    delivery: Literal["exactly_once", "at_least_once"] = "exactly_once"
    output_key: Literal["hmac", "keep", "drop"] = "hmac"
    on_leak: Literal["dead_letter", "redact"] = "dead_letter"
    metrics_port: int = Field(9400, ge=0, le=65535)
    batch_size: int = Field(500, ge=1, le=100_000)
    poll_timeout_s: float = Field(0.2, gt=0)
    batch_linger_s: float = Field(0.0, ge=0, le=60)
    transactional_id: str | None = None
    transaction_timeout_s: int = Field(60, ge=1)
    shutdown_timeout_s: float = Field(20.0, gt=0)
    connect_timeout_s: float = Field(30.0, gt=0)
    stall_timeout_s: float = Field(60.0, gt=0)
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    kafka: dict[str, str | int | float | bool] = Field(default_factory=dict)
    kafka_secrets_file: Path | None = None
    scan: ScanSettings = Field(default_factory=ScanSettings)
    aggregate: dict[str, Any] | None = None

    @field_validator("input_topics", mode="before")
    @classmethod
    def _split_topics(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [t.strip() for t in value.split(",") if t.strip()]
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if not self.input_topics:
            raise ValueError("input_topics: at least one topic is required")
        if self.schemas_dir is None and self.schema_registry_url is None:
            if "schemas_dir" in self.model_fields_set:
                raise ValueError("set schemas_dir or schema_registry_url: records need a writer schema")
            self.schemas_dir = Path("schemas")
        if self.output_topic in self.input_topics or self.dlq_topic in self.input_topics:
            raise ValueError("output_topic and dlq_topic must differ from the input topics")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init kwargs; the environment must win over them.
        return env_settings, init_settings

    @property
    def effective_transactional_id(self) -> str:
        # Stable across restarts of the same pod/host, so a restarted worker fences its predecessor's
        # hanging transaction at once instead of waiting for the transaction timeout.
        return self.transactional_id or f"{self.group_id}-{socket.gethostname()}"

    def librdkafka(self) -> dict[str, str | int | float | bool]:
        """The ``kafka`` mapping merged with the secrets file, passed to librdkafka unchanged."""
        merged: dict[str, str | int | float | bool] = {"bootstrap.servers": self.bootstrap_servers}
        merged.update(self.kafka)
        if self.kafka_secrets_file is not None:
            merged.update(_read_mapping(self.kafka_secrets_file, "kafka_secrets_file"))
        return merged

    def redacted(self) -> dict[str, Any]:
        """A view safe to log: secrets of the kafka mapping replaced."""
        data = self.model_dump(mode="json")
        data["kafka"] = {k: ("***" if k in _SECRET_KAFKA_KEYS else v) for k, v in self.kafka.items()}
        return data


# Paths in the configuration file, resolved against the file's directory: (section or None, key).
_PATH_KEYS = (
    (None, "schemas_dir"),
    (None, "keys_file"),
    (None, "tag_policy_file"),
    (None, "kafka_secrets_file"),
    ("schema_registry", "password_file"),
    ("schema_registry", "ca_location"),
    ("schema_registry", "certificate_location"),
    ("schema_registry", "key_location"),
)


def _read_mapping(path: Path, what: str) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what}: {path} is not valid YAML: {exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{what}: {path} must hold a mapping of keys to values")
    return loaded


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Read the configuration file (if any), apply the environment, validate.

    Relative paths in the file are resolved against the file's directory.
    """
    values: dict[str, Any] = {}
    if path is not None:
        values = _read_mapping(path, "config")
        base = path.parent
        for section, key in _PATH_KEYS:
            where = values if section is None else values.get(section)
            if (
                isinstance(where, dict)
                and isinstance(where.get(key), str)
                and not Path(where[key]).is_absolute()
            ):
                where[key] = str(base / where[key])
    values.update(overrides)
    try:
        return Settings(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None
