"""The keys file: named secrets with numbered versions, for ``hmac``, ``tokenize`` and ``date_shift``.

The file is JSON, readable by its owner only::

    {
      "format": "stream-anon-keys/1",
      "keys": {
        "default": {
          "active": 2,
          "versions": {
            "1": {"secret": "<base64, 32 bytes or more>", "created": "2025-01-06T09:30:00Z"},
            "2": {"secret": "<base64>", "created": "2025-04-01T08:00:00Z"}
          }
        }
      }
    }

An optional top-level ``"dlq_encryption_key": "<name>"`` names the key that seals dead letters at rest
(``stream_anon.dlq.seal``); destroying one of its versions (``keys destroy``) makes the dead letters sealed
under it unreadable for good.

New values are always written with the ``active`` version; older versions stay so that tokens made with
them can still be verified or reversed (every token names its key and version). Operations never use a
secret directly: each one derives its own subkey with HKDF-SHA256 (``Keys.derive``, caching
``crypto.derive_key``), so one secret can serve ``hmac`` and ``tokenize`` without one weakening the other.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stream_anon.crypto import derive_key

FORMAT = "stream-anon-keys/1"
DEFAULT_KEY = "default"
SECRET_BYTES = 32
MIN_SECRET_BYTES = 32
# Key names appear inside tokens, between dots: keep them to a safe alphabet.
KEY_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class KeysError(Exception):
    """The keys file cannot be used. Messages never contain secrets."""


class KeysFileError(KeysError, ValueError):
    """The keys file is missing, not JSON, or not shaped like a keys file."""


class KeysPermissionError(KeysError, PermissionError):
    """The keys file is readable or writable by others than its owner."""


class UnknownKeyError(KeysError, KeyError):
    """An operation names a key (or a token names a version) that the keys file does not hold."""

    def __str__(self) -> str:  # KeyError quotes its argument; this is a sentence
        return str(self.args[0]) if self.args else "unknown key"


@dataclass(frozen=True, slots=True)
class KeyVersion:
    secret: bytes = field(repr=False)
    created: str | None = None


@dataclass(frozen=True, slots=True)
class NamedKey:
    active: int
    versions: Mapping[int, KeyVersion]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fresh_version() -> KeyVersion:
    return KeyVersion(secrets.token_bytes(SECRET_BYTES), _now())


def check_key_name(name: str) -> str:
    if not isinstance(name, str) or not KEY_NAME.match(name):
        raise KeysFileError(f"key name {name!r} must be 1-64 letters, digits, '_' or '-'")
    return name


class Keys:
    """Named keys with versions. Immutable: ``rotate`` returns a new ``Keys``."""

    def __init__(
        self,
        keys: Mapping[str, NamedKey],
        *,
        ephemeral: bool = False,
        dlq_encryption_key: str | None = None,
    ) -> None:
        for name, key in keys.items():
            check_key_name(name)
            if key.active not in key.versions:
                raise KeysFileError(f"key {name!r}: active version {key.active} is not among its versions")
        if dlq_encryption_key is not None and dlq_encryption_key not in keys:
            raise KeysFileError(f"dlq_encryption_key names {dlq_encryption_key!r}, which is not a key here")
        self._keys = dict(keys)
        self.dlq_encryption_key = dlq_encryption_key
        """The key that seals dead letters at rest, or None (dead letters keep the raw bytes)."""
        self._ephemeral = ephemeral
        self._derived: dict[tuple[str, int, str, int], bytes] = {}

    # -- constructors -------------------------------------------------------------------------------

    @classmethod
    def empty(cls) -> Keys:
        """No keys at all: rules that need one fail to compile, with the key's name."""
        return cls({})

    @classmethod
    def generate(cls, names: Iterable[str] = (DEFAULT_KEY,)) -> Keys:
        """Fresh random secrets (version 1) under each name."""
        return cls({check_key_name(n): NamedKey(1, {1: _fresh_version()}) for n in names})

    @classmethod
    def ephemeral(cls) -> Keys:
        """Random in-memory secrets under whatever name is asked for.

        For checking rules without the real keys file (``lint``, ``catalog``, ``schemas derive``):
        nothing made with them can ever be verified or reversed.
        """
        return cls({}, ephemeral=True)

    @classmethod
    def load(cls, path: Path | str) -> Keys:
        """Read a keys file; refuses one that group or others can read or write (chmod 600 fixes it)."""
        path = Path(path)
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            raise KeysFileError(
                f"keys file {path} does not exist (create one: stream-anon keys generate)"
            ) from None
        except OSError as exc:
            raise KeysFileError(f"keys file {path}: {exc.strerror}") from None
        if not stat.S_ISREG(mode):
            raise KeysFileError(f"keys file {path} is not a regular file")
        if mode & 0o077:
            raise KeysPermissionError(
                f"keys file {path} is accessible by group or others (mode {stat.S_IMODE(mode):04o}); "
                f"it holds secrets and must be readable by its owner only: chmod 600 {path}"
            )
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise KeysFileError(f"keys file {path} cannot be read ({type(exc).__name__})") from None
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise KeysFileError(f"keys file {path} is not JSON (line {exc.lineno})") from None
        try:
            return cls.from_dict(document)
        except KeysFileError as exc:
            raise KeysFileError(f"keys file {path}: {exc}") from None

    @classmethod
    def from_dict(cls, document: Any) -> Keys:
        if not isinstance(document, dict) or not isinstance(document.get("keys"), dict):
            raise KeysFileError('expected an object with "keys": {name: {"active": N, "versions": {...}}}')
        found = document.get("format", FORMAT)
        if found != FORMAT:
            raise KeysFileError(f"unsupported format {found!r}, expected {FORMAT!r}")
        keys: dict[str, NamedKey] = {}
        for name, entry in document["keys"].items():
            check_key_name(name)
            if not isinstance(entry, dict) or not isinstance(entry.get("versions"), dict):
                raise KeysFileError(f'key {name!r} needs "active" and "versions"')
            versions = {
                _version_number(name, v): _key_version(name, v, s) for v, s in entry["versions"].items()
            }
            if not versions:
                raise KeysFileError(f"key {name!r} has no versions")
            active = entry.get("active", max(versions))
            if isinstance(active, bool) or not isinstance(active, int):
                raise KeysFileError(f"key {name!r}: active must be a version number")
            keys[name] = NamedKey(active, versions)
        dlq_key = document.get("dlq_encryption_key")
        if dlq_key is not None and not isinstance(dlq_key, str):
            raise KeysFileError("dlq_encryption_key must be the name of a key")
        return cls(keys, dlq_encryption_key=dlq_key)

    # -- reading ------------------------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        return sorted(self._keys)

    def __contains__(self, name: object) -> bool:
        return self._ephemeral or name in self._keys

    def _named(self, name: str) -> NamedKey:
        found = self._keys.get(name)
        if found is None:
            if self._ephemeral:
                check_key_name(name)
                found = self._keys.setdefault(name, NamedKey(1, {1: _fresh_version()}))
            else:
                held = ", ".join(self.names) or "none"
                raise UnknownKeyError(f"no key named {name!r} in the keys file (it holds: {held})")
        return found

    def active(self, name: str = DEFAULT_KEY) -> tuple[int, bytes]:
        """The active version of ``name`` and its secret. Raises ``KeyError`` for an unknown name."""
        key = self._named(name)
        return key.active, key.versions[key.active].secret

    def versions(self, name: str = DEFAULT_KEY) -> list[int]:
        return sorted(self._named(name).versions)

    def secret(self, name: str, version: int) -> bytes:
        found = self._named(name).versions.get(version)
        if found is None:
            raise UnknownKeyError(f"key {name!r} has no version {version}")
        return found.secret

    def derive(self, name: str, version: int, purpose: str, length: int = 32) -> bytes:
        """A secret for one purpose (``hmac``, ``tokenize``, ...): ``crypto.derive_key``, cached."""
        cache_key = (name, version, purpose, length)
        found = self._derived.get(cache_key)
        if found is None:
            found = self._derived[cache_key] = derive_key(self.secret(name, version), purpose, length)
        return found

    # -- changing -----------------------------------------------------------------------------------

    def rotate(self, name: str = DEFAULT_KEY) -> Keys:
        """A copy with a new active version of ``name``; older versions are kept for reading."""
        key = self._named(name)
        version = max(key.versions) + 1
        rotated = dict(self._keys)
        rotated[name] = NamedKey(version, {**key.versions, version: _fresh_version()})
        return Keys(rotated, dlq_encryption_key=self.dlq_encryption_key)

    def sealing_dead_letters_with(self, name: str) -> Keys:
        """A copy whose ``dlq_encryption_key`` is ``name`` (a new key, version 1, if the file has none)."""
        keys = (
            self._keys
            if name in self._keys
            else {**self._keys, check_key_name(name): NamedKey(1, {1: _fresh_version()})}
        )
        return Keys(keys, dlq_encryption_key=name)

    def without_version(self, name: str, version: int) -> Keys:
        """A copy without one version of ``name``: what it sealed or tokenized can never be read again.
        The active version cannot be destroyed (rotate first)."""
        key = self._named(name)
        if version not in key.versions:
            raise UnknownKeyError(f"key {name!r} has no version {version}")
        if version == key.active:
            raise KeysError(f"version {version} of {name!r} is active; rotate the key first")
        remaining = {v: kv for v, kv in key.versions.items() if v != version}
        return Keys(
            {**self._keys, name: NamedKey(key.active, remaining)}, dlq_encryption_key=self.dlq_encryption_key
        )

    def to_dict(self) -> dict[str, Any]:
        sealing = {} if self.dlq_encryption_key is None else {"dlq_encryption_key": self.dlq_encryption_key}
        return {
            "format": FORMAT,
            **sealing,
            "keys": {
                name: {
                    "active": key.active,
                    "versions": {
                        str(v): {"secret": base64.b64encode(kv.secret).decode("ascii"), "created": kv.created}
                        for v, kv in sorted(key.versions.items())
                    },
                }
                for name, key in sorted(self._keys.items())
            },
        }

    def save(self, path: Path | str, *, overwrite: bool = True) -> None:
        """Write the file with mode 0600, atomically (a reader never sees half a file)."""
        if self._ephemeral:
            raise KeysError("ephemeral keys are for checking rules and are never saved")
        path = Path(path)
        if not overwrite and path.exists():
            raise KeysFileError(f"{path} already exists")
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        fd, tmp = tempfile.mkstemp(prefix=".keys-", dir=path.parent or ".")
        try:
            os.fchmod(fd, 0o600)  # mkstemp already creates 0600; this also survives an odd umask
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def __repr__(self) -> str:  # never the secrets
        described = ", ".join(f"{n} v{k.active}/{len(k.versions)}" for n, k in sorted(self._keys.items()))
        return f"Keys({described}{', ephemeral' if self._ephemeral else ''})"


def _version_number(name: str, text: Any) -> int:
    try:
        number = int(text)
    except (TypeError, ValueError):
        raise KeysFileError(f"key {name!r}: version {text!r} is not a number") from None
    if number < 1:
        raise KeysFileError(f"key {name!r}: versions start at 1")
    return number


def _key_version(name: str, version: Any, entry: Any) -> KeyVersion:
    created: str | None = None
    if isinstance(entry, dict):
        created = entry.get("created") if isinstance(entry.get("created"), str) else None
        entry = entry.get("secret")
    if not isinstance(entry, str):
        raise KeysFileError(f"key {name!r} version {version}: secret must be a base64 string")
    try:
        secret = base64.b64decode(entry, validate=True)
    except (binascii.Error, ValueError):
        raise KeysFileError(f"key {name!r} version {version}: secret is not valid base64") from None
    if len(secret) < MIN_SECRET_BYTES:
        raise KeysFileError(
            f"key {name!r} version {version}: secret has {len(secret)} bytes, "
            f"at least {MIN_SECRET_BYTES} needed"
        )
    return KeyVersion(secret, created)
