"""The Schema Registry client: the Confluent REST API the worker needs, and what each answer means.

Every registry failure is one of four kinds, each handled its own way (docs/configuration.md,
docs/dead-letter.md):

* ``SchemaNotFound``: the id is unknown (404 with error code 40403). The record is dead-lettered as
  ``unknown_schema``.
* ``DerivedSchemaRejected``: the registry refused the derived schema (409: incompatible with the
  subject's earlier versions; 422: invalid), or it is not registered and ``auto_register_derived`` is
  off. The records of that writer schema are dead-lettered as ``derived_schema_rejected``; other schemas
  keep flowing.
* ``RegistryMisconfigured``: what answers at the URL is not a registry we can use (a 404 without a
  registry error code, authentication refused, a page that is not the Confluent API). The start-up check
  fails with the URL and what answered; while running, it is treated as unavailable.
* ``RegistryUnavailable``: unreachable, timed out, 5xx, 429. Nothing is dead-lettered: the worker retries
  with backoff and reports not ready until the registry answers again.
"""

from __future__ import annotations

import json
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import SchemaRegistryClient

    from stream_anon.config import RegistrySettings

log = structlog.get_logger(__name__)

# The Confluent API's error code for "schema not found"; a 404 without it comes from something else
# (a wrong base path, a proxy), and must not condemn records as unknown_schema.
SCHEMA_NOT_FOUND = 40403
SUBJECT_NOT_FOUND = 40401
VERSION_NOT_FOUND = 40402
_APICURIO_HINT = "; with Apicurio Registry the URL ends in /apis/ccompat/v7"


class RegistryErrorKind(StrEnum):
    """The kinds above, as metric label values."""

    UNAVAILABLE = "unavailable"
    MISCONFIGURED = "misconfigured"
    DERIVED_SCHEMA_REJECTED = "derived_schema_rejected"
    SCHEMA_NOT_FOUND = "schema_not_found"


class RegistryError(Exception):
    kind: RegistryErrorKind


class SchemaNotFound(RegistryError):
    kind = RegistryErrorKind.SCHEMA_NOT_FOUND


class RegistryUnavailable(RegistryError):
    """The registry cannot answer right now: retry later, never dead-letter."""

    kind = RegistryErrorKind.UNAVAILABLE


class RegistryMisconfigured(RegistryUnavailable):
    """The URL does not lead to a registry we can use. A start-up error; at run time, a kind of outage
    (it may be a proxy's doing, and condemning records for it would hide the cause)."""

    kind = RegistryErrorKind.MISCONFIGURED


class DerivedSchemaRejected(RegistryError):
    """The registry will not take the derived schema under ``subject``; ``message`` is its answer."""

    kind = RegistryErrorKind.DERIVED_SCHEMA_REJECTED

    def __init__(self, subject: str, status: int | None, message: str) -> None:
        super().__init__(f"registry refused the derived schema under {subject}: {message}")
        self.subject = subject
        self.status = status
        self.message = message


class SubjectNameStrategy(StrEnum):
    """Where the derived schema is registered, as Confluent's serializers name subjects."""

    TOPIC_NAME = "topic_name"
    RECORD_NAME = "record_name"
    TOPIC_RECORD_NAME = "topic_record_name"


def full_name(schema: dict[str, Any]) -> str:
    name = str(schema.get("name", ""))
    namespace = schema.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"


def derived_subject(strategy: SubjectNameStrategy, topic: str, derived: dict[str, Any]) -> str:
    """The subject of the sanitized topic's value schema under ``strategy``."""
    if strategy is SubjectNameStrategy.RECORD_NAME:
        return full_name(derived)
    if strategy is SubjectNameStrategy.TOPIC_RECORD_NAME:
        return f"{topic}-{full_name(derived)}"
    return f"{topic}-value"


def client_config(url: str, settings: RegistrySettings | None) -> dict[str, Any]:
    """confluent-kafka's ``SchemaRegistryClient`` configuration: URL, basic auth, TLS, one attempt per call
    (the worker retries with its own backoff, so the loop never sleeps inside the client)."""
    conf: dict[str, Any] = {"url": url, "max.retries": 0}
    if settings is None:
        return conf
    conf["timeout"] = settings.timeout_s
    if settings.username is not None:
        password = ""
        if settings.password_file is not None:
            password = read_secret(settings.password_file)
        conf["basic.auth.user.info"] = f"{settings.username}:{password}"
    if settings.ca_location is not None:
        conf["ssl.ca.location"] = str(settings.ca_location)
    if settings.certificate_location is not None:
        conf["ssl.certificate.location"] = str(settings.certificate_location)
    if settings.key_location is not None:
        conf["ssl.key.location"] = str(settings.key_location)
    return conf


def read_secret(path: Path) -> str:
    from stream_anon.config import ConfigError

    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"schema_registry.password_file: cannot read {path}: {exc.strerror}") from None


class RegistryClient:
    """The calls the worker, the readers and the CLI make, each failure turned into one of the kinds."""

    def __init__(self, url: str, settings: RegistrySettings | None = None) -> None:
        from confluent_kafka.schema_registry import SchemaRegistryClient

        self.url = url
        self._client: SchemaRegistryClient = SchemaRegistryClient(client_config(url, settings))

    def check(self) -> None:
        """The start-up check: the URL must answer as a Confluent-compatible registry.

        Raises ``RegistryMisconfigured`` naming the URL and what answered, or ``RegistryUnavailable``.
        """
        try:
            listed = self._client.get_subjects()
        except ValueError as exc:  # a 2xx whose body is not JSON: a web page, not the API
            raise RegistryMisconfigured(
                f"{self.url} is not a Confluent-compatible schema registry: GET /subjects answered with a "
                f"body that is not JSON ({_describe(exc)}){_APICURIO_HINT}"
            ) from None
        except Exception as exc:
            status = _status(exc)
            if status is None or status >= 500 or status in (408, 429):
                raise _outage(self.url, exc) from None
            if status in (401, 403):
                raise RegistryMisconfigured(
                    f"schema registry at {self.url} refused the credentials: GET /subjects answered HTTP "
                    f"{status}; check schema_registry.username and password_file"
                ) from None
            raise RegistryMisconfigured(
                f"{self.url} is not a Confluent-compatible schema registry: GET /subjects answered HTTP "
                f"{status} ({_message(exc)}){_APICURIO_HINT}"
            ) from None
        if not isinstance(listed, list):
            raise RegistryMisconfigured(
                f"{self.url} is not a Confluent-compatible schema registry: GET /subjects answered "
                f"{type(listed).__name__}, not a list of subjects{_APICURIO_HINT}"
            )

    def wait_until_answering(self, timeout_s: float) -> None:
        """``check``, retrying while the registry is unreachable or failing (it may be starting too), for up
        to ``timeout_s``. A misconfiguration fails at once."""
        deadline = time.monotonic() + timeout_s
        delay = 0.5
        while True:
            try:
                self.check()
                return
            except RegistryMisconfigured:
                raise
            except RegistryUnavailable as exc:
                if time.monotonic() + delay > deadline:
                    raise RegistryUnavailable(f"{exc} (for {timeout_s:.0f}s, connect_timeout_s)") from None
                log.warning("schema_registry_not_answering", url=self.url, error=str(exc), retry_in_s=delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def schema_text(self, schema_id: int) -> tuple[str, str | None, bool]:
        """The schema registered under ``schema_id``: its text, its type, and whether it has references."""
        try:
            registered = self._client.get_schema(schema_id)
        except Exception as exc:
            if _error_code(exc) == SCHEMA_NOT_FOUND:
                raise SchemaNotFound(f"schema id {schema_id} unknown to the registry") from None
            raise _outage(self.url, exc) from None
        return registered.schema_str or "", registered.schema_type, bool(registered.references)

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        """Register ``schema`` under ``subject`` (an existing identical version keeps its id)."""
        from confluent_kafka.schema_registry import Schema

        try:
            return int(self._client.register_schema(subject, Schema(json.dumps(schema), "AVRO")))
        except Exception as exc:
            status = _status(exc)
            if status in (409, 422):
                raise DerivedSchemaRejected(subject, status, _message(exc)) from None
            raise _outage(self.url, exc) from None

    def registered_id(self, subject: str, schema: dict[str, Any]) -> int:
        """The id of ``schema`` already registered under ``subject``; never registers it."""
        from confluent_kafka.schema_registry import Schema

        try:
            found = self._client.lookup_schema(subject, Schema(json.dumps(schema), "AVRO"))
        except Exception as exc:
            if _error_code(exc) in (SUBJECT_NOT_FOUND, SCHEMA_NOT_FOUND, VERSION_NOT_FOUND):
                raise DerivedSchemaRejected(
                    subject,
                    _status(exc),
                    "the derived schema is not registered and auto_register_derived is false; register it "
                    "with stream-anon schemas register",
                ) from None
            raise _outage(self.url, exc) from None
        return int(found.schema_id or 0)

    def compatible(self, subject: str, schema: dict[str, Any]) -> tuple[bool, str]:
        """Whether registering ``schema`` under ``subject`` would succeed, and why not."""
        from confluent_kafka.schema_registry import Schema

        candidate = Schema(json.dumps(schema), "AVRO")
        try:
            ok = self._client.test_compatibility(subject, candidate)
        except Exception as exc:
            if _error_code(exc) in (SUBJECT_NOT_FOUND, VERSION_NOT_FOUND):
                return True, "first version of the subject"
            if _status(exc) == 422:
                return False, f"invalid schema: {_message(exc)}"
            raise _outage(self.url, exc) from None
        if ok:
            return True, "compatible with the latest version"
        return False, f"incompatible with the latest version under {self._level(subject)} compatibility"

    def _level(self, subject: str) -> str:
        """The compatibility level that refused: the subject's own, else the global one. (Apicurio answers
        NONE for a subject without a level of its own, which cannot be the level that refused.)"""
        for name in (subject, None):
            try:
                level = str(self._client.get_compatibility(name))
            except Exception:
                continue
            if level != "NONE":
                return level
        return "the registry's"

    def subjects(self) -> list[str]:
        try:
            return list(self._client.get_subjects())
        except Exception as exc:
            raise _outage(self.url, exc) from None


def _status(exc: Exception) -> int | None:
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    return exc.http_status_code if isinstance(exc, SchemaRegistryError) else None


def _error_code(exc: Exception) -> int | None:
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    return exc.error_code if isinstance(exc, SchemaRegistryError) else None


def _message(exc: Exception) -> str:
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    if isinstance(exc, SchemaRegistryError):
        return str(exc.error_message)[:500] if exc.error_message else "no registry error code in the answer"
    return _describe(exc)


def _describe(exc: Exception) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def _outage(url: str, exc: Exception) -> RegistryUnavailable:
    """Any failure that is not about the schema itself: the registry, or the way to it, is the problem."""
    status = _status(exc)
    if status is None:
        return RegistryUnavailable(f"schema registry at {url} unreachable: {_describe(exc)}")
    if status in (401, 403):
        return RegistryMisconfigured(f"schema registry at {url} refused the credentials: HTTP {status}")
    if status == 404 or (status < 500 and status not in (408, 429)):
        # a 404 without a registry error code, or a 4xx the API does not document for this call
        return RegistryMisconfigured(
            f"{url} is not a Confluent-compatible schema registry: it answered HTTP {status} "
            f"({_message(exc)}){_APICURIO_HINT}"
        )
    return RegistryUnavailable(f"schema registry at {url} answered HTTP {status}: {_message(exc)}")
