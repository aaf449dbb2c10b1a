"""Writer schemas: resolve a message's schema id or fingerprint, and publish derived schemas.

Two sources sit behind one ``SchemaResolver``, chosen by the message's framing:

* ``DirectorySchemas``: ``.avsc`` files indexed by CRC-64-AVRO fingerprint (the embedded default). An
  unknown fingerprint triggers a rate-limited rescan, so a v2 file added to a mounted directory is picked
  up without a restart.
* ``RegistrySchemas``: a Confluent-API-compatible Schema Registry (ids, and the derived schema registered
  under the sanitized topic's value subject).

A registry that cannot be reached is not a record failure: ``RegistryUnavailable`` tells the worker to
retry the batch later rather than dead-letter it (``stream_anon.registry`` lists every registry failure).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fastavro
import fastavro.schema
import structlog

from stream_anon.registry import RegistryClient, SchemaNotFound, SubjectNameStrategy, derived_subject
from stream_anon.schema import strip_logical_types
from stream_anon.wire import Framing, WireError, WireErrorKind, frame_header, schema_ref

if TYPE_CHECKING:
    from stream_anon.config import Settings

log = structlog.get_logger(__name__)

# A schema this large is hostile or broken; refusing it bounds parse time and memory.
MAX_SCHEMA_BYTES = 1_000_000


@dataclass(frozen=True, slots=True)
class WriterSchema:
    """A resolved writer schema: its reference, the JSON as written (with annotations), the parsed form."""

    ref: str
    schema: dict[str, Any]
    parsed: Any


def parse_writer_schema(text: str | dict[str, Any], ref: str) -> WriterSchema:
    """Parse a schema as written; every failure is an ``invalid_schema`` ``WireError``."""
    try:
        if isinstance(text, str):
            if len(text) > MAX_SCHEMA_BYTES:
                raise WireError(WireErrorKind.INVALID_SCHEMA, "schema larger than 1 MB", ref)
            loaded = json.loads(text)
        else:
            loaded = text
        if isinstance(loaded, list):
            # A file of named types: the last one is the top-level record, the others its dependencies.
            loaded = fastavro.parse_schema(loaded, expand=True, _write_hint=False)[-1]
        if not isinstance(loaded, dict) or loaded.get("type") != "record":
            raise WireError(WireErrorKind.INVALID_SCHEMA, "top-level schema is not a record", ref)
        parsed = fastavro.parse_schema(strip_logical_types(loaded))
    except WireError:
        raise
    except RecursionError:
        raise WireError(WireErrorKind.INVALID_SCHEMA, "schema nests too deeply", ref) from None
    except Exception as exc:  # json and fastavro raise many types on hostile schemas
        raise WireError(
            WireErrorKind.INVALID_SCHEMA, f"schema does not parse ({type(exc).__name__})", ref
        ) from None
    return WriterSchema(ref=ref, schema=loaded, parsed=parsed)


def fingerprint(schema: dict[str, Any]) -> bytes:
    """The 8 bytes that follow ``C3 01`` in single-object encoding (CRC-64-AVRO, little-endian)."""
    canonical = fastavro.schema.to_parsing_canonical_form(fastavro.parse_schema(schema, _write_hint=False))
    return bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO"))


class DirectorySchemas:
    """Writer schemas from a directory of ``.avsc`` files, by fingerprint."""

    RESCAN_INTERVAL_S = 2.0

    def __init__(self, directory: Path) -> None:
        if not directory.is_dir():
            raise FileNotFoundError(f"schemas_dir {directory} is not a directory")
        self._directory = directory
        self._by_fingerprint: dict[bytes, WriterSchema] = {}
        self._files_seen: dict[Path, float] = {}
        self._owners: dict[bytes, Path] = {}
        self._ambiguous: set[bytes] = set()
        self._last_scan = 0.0
        self._lock = threading.Lock()
        self.rescan()

    def rescan(self) -> None:
        with self._lock:
            self._last_scan = time.monotonic()
            for path in sorted(self._directory.glob("*.avsc")):
                mtime = path.stat().st_mtime
                if self._files_seen.get(path) == mtime:
                    continue
                self._files_seen[path] = mtime
                try:
                    writer = parse_writer_schema(path.read_text(encoding="utf-8"), ref=f"file:{path.name}")
                    fp = fingerprint(writer.schema)
                except (WireError, OSError, ValueError) as exc:
                    log.warning("schema_file_skipped", file=path.name, error=str(exc))
                    continue
                other = self._by_fingerprint.get(fp)
                owner = self._owners.setdefault(fp, path)
                if other is not None and owner != path and other.schema != writer.schema:
                    # Same canonical form, different annotations: which rules apply is ambiguous. Fail closed.
                    self._ambiguous.add(fp)
                    log.error(
                        "schema_fingerprint_ambiguous", files=[owner.name, path.name], fingerprint=fp.hex()
                    )
                    continue
                self._by_fingerprint[fp] = WriterSchema(
                    ref=schema_ref(Framing.SINGLE_OBJECT, fp), schema=writer.schema, parsed=writer.parsed
                )
                log.info("schema_loaded", file=path.name, fingerprint=fp.hex())

    def lookup(self, ident: bytes) -> WriterSchema:
        if ident in self._ambiguous:
            raise WireError(
                WireErrorKind.INVALID_SCHEMA,
                "two .avsc files in schemas_dir share this fingerprint with different annotations",
                schema_ref(Framing.SINGLE_OBJECT, ident),
            )
        found = self._by_fingerprint.get(ident)
        if found is None and time.monotonic() - self._last_scan >= self.RESCAN_INTERVAL_S:
            self.rescan()
            found = self._by_fingerprint.get(ident)
        if found is None:
            raise WireError(
                WireErrorKind.UNKNOWN_SCHEMA,
                "fingerprint matches no .avsc file in schemas_dir",
                schema_ref(Framing.SINGLE_OBJECT, ident),
            )
        return found

    def add(self, schema: dict[str, Any]) -> bytes:
        """Index a schema not in the directory (a derived one, for readers); returns its fingerprint."""
        fp = fingerprint(schema)
        writer = parse_writer_schema(schema, ref=schema_ref(Framing.SINGLE_OBJECT, fp))
        self._by_fingerprint[fp] = writer
        return fp

    def schemas(self) -> list[WriterSchema]:
        return list(self._by_fingerprint.values())


class RegistrySchemas:
    """Writer schemas from a Confluent-API-compatible Schema Registry by id, and the derived schemas'
    registration (see ``stream_anon.registry`` for what each registry failure means)."""

    NEGATIVE_CACHE_S = 30.0

    def __init__(
        self,
        client: RegistryClient,
        strategy: SubjectNameStrategy = SubjectNameStrategy.TOPIC_NAME,
        auto_register: bool = True,
    ) -> None:
        self.client = client
        self.strategy = strategy
        self.auto_register = auto_register
        self._by_id: dict[int, WriterSchema] = {}
        self._unknown_until: dict[int, float] = {}

    def lookup(self, ident: bytes) -> WriterSchema:
        schema_id = int.from_bytes(ident, "big")
        found = self._by_id.get(schema_id)
        if found is not None:
            return found
        ref = schema_ref(Framing.CONFLUENT, ident)
        if self._unknown_until.get(schema_id, 0.0) > time.monotonic():
            raise WireError(WireErrorKind.UNKNOWN_SCHEMA, "schema id unknown to the registry", ref)
        try:
            text, schema_type, has_references = self.client.schema_text(schema_id)
        except SchemaNotFound:
            self._unknown_until[schema_id] = time.monotonic() + self.NEGATIVE_CACHE_S
            raise WireError(WireErrorKind.UNKNOWN_SCHEMA, "schema id unknown to the registry", ref) from None
        if schema_type not in (None, "AVRO"):
            raise WireError(WireErrorKind.INVALID_SCHEMA, f"schema type {schema_type} is not Avro", ref)
        if has_references:
            raise WireError(WireErrorKind.INVALID_SCHEMA, "schema references are not supported", ref)
        found = parse_writer_schema(text, ref)
        self._by_id[schema_id] = found
        return found

    def subject(self, derived: dict[str, Any], topic: str) -> str:
        return derived_subject(self.strategy, topic, derived)

    def derived_id(self, derived: dict[str, Any], topic: str) -> int:
        """The id of ``derived`` for records written to ``topic``: registered under its subject, or (with
        ``auto_register`` off) looked up there.

        Raises ``DerivedSchemaRejected`` or ``RegistryUnavailable``.
        """
        subject = self.subject(derived, topic)
        if self.auto_register:
            return self.client.register(subject, derived)
        return self.client.registered_id(subject, derived)


class SchemaResolver:
    """Resolves writer schemas by framing and gives the frame header for derived schemas."""

    def __init__(self, directory: DirectorySchemas | None, registry: RegistrySchemas | None) -> None:
        self.directory = directory
        self.registry = registry

    def lookup(self, framing: Framing, ident: bytes) -> WriterSchema:
        if framing is Framing.CONFLUENT:
            if self.registry is None:
                raise WireError(
                    WireErrorKind.UNKNOWN_SCHEMA,
                    "Confluent-framed record but no schema_registry_url is configured",
                    schema_ref(framing, ident),
                )
            return self.registry.lookup(ident)
        if self.directory is None:
            raise WireError(
                WireErrorKind.UNKNOWN_SCHEMA,
                "single-object record but no schemas_dir is configured",
                schema_ref(framing, ident),
            )
        return self.directory.lookup(ident)

    def derived_header(self, derived: dict[str, Any], topic: str) -> bytes:
        """Frame header for records written to ``topic`` with ``derived``: the registry id if any, else the
        fingerprint."""
        if self.registry is not None:
            schema_id = self.registry.derived_id(derived, topic)
            return frame_header(Framing.CONFLUENT, schema_id.to_bytes(4, "big"))
        fp = fingerprint(derived)
        if self.directory is not None:
            self.directory.add(derived)
        return frame_header(Framing.SINGLE_OBJECT, fp)


def open_resolver(settings: Settings, check: bool = False) -> SchemaResolver:
    """The resolver of a configuration. ``check``: the start-up check, which fails (``RegistryMisconfigured``
    at once, ``RegistryUnavailable`` after ``connect_timeout_s``) unless the registry answers as one."""
    directory = DirectorySchemas(settings.schemas_dir) if settings.schemas_dir is not None else None
    registry = None
    if settings.schema_registry_url:
        options = settings.schema_registry
        client = RegistryClient(settings.schema_registry_url, options)
        if check:
            client.wait_until_answering(settings.connect_timeout_s)
        registry = RegistrySchemas(
            client,
            SubjectNameStrategy(options.subject_name_strategy),
            options.auto_register_derived,
        )
    return SchemaResolver(directory, registry)
