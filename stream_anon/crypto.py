"""The project's cryptography, in one place: key derivation, keyed pseudonyms and reversible tokens.

* ``derive_key``: every use of a secret from the keys file goes through a subkey derived with HKDF-SHA256
  for one purpose (``hmac``, ``tokenize``, ``date_shift``, ``output_key``, ``dlq-seal``), so one secret can
  serve several operations without one weakening the other. ``Keys.derive`` caches it per key version and
  purpose.
* ``pseudonym_function``: the keyed pseudonym ``<prefix><base64url(HMAC-SHA256(subkey, value)[:length])>``,
  used by the ``hmac`` operation (``hm1.<key>.<version>.``), the scan's ``hmac`` replacement and the
  output-key hash (``k2.<key>.<version>.``). Deterministic per key version, not reversible.
* ``token_function`` and ``detokenize``: AES-SIV deterministic encryption (``tk1.<key>.<version>.``),
  reversible by whoever holds the keys file.

Imports nothing from stream_anon: ``keys`` builds on it, and operations reach keys through a protocol.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

HMAC_PURPOSE = "hmac"
TOKENIZE_PURPOSE = "tokenize"
DLQ_SEAL_PURPOSE = "dlq-seal"  # sealing dead letters at rest (stream_anon.dlq.seal)
TOKEN_KEY_BYTES = 64  # AES-SIV with two 256-bit keys
TOKEN_SCHEME = "tk1"
PSEUDONYM_SCHEME = "hm1"


def derive_key(secret: bytes, purpose: str, length: int = 32) -> bytes:
    """The subkey of ``secret`` for one purpose: HKDF-SHA256, no salt, info ``stream-anon/<purpose>``."""
    kdf = HKDF(algorithm=SHA256(), length=length, salt=None, info=f"stream-anon/{purpose}".encode())
    return kdf.derive(secret)


class DerivesKeys(Protocol):
    """What the functions below need of a keys file (``stream_anon.keys.Keys``)."""

    def derive(self, name: str, version: int, purpose: str, length: int = 32) -> bytes: ...


_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


class HmacSha256:
    """HMAC-SHA256 (RFC 2104) under one key, keyed once.

    ``mac(message)`` equals ``hmac.digest(key, message, "sha256")``. The padded key's two blocks are
    hashed once, and each value only copies the two hash states: cheaper than keying per value, and
    than copying an ``hmac.HMAC``, whose ``copy`` runs in Python. It runs once per pseudonymized value.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > 64:  # the block size: longer keys are hashed first
            key = hashlib.sha256(key).digest()
        block = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(block.translate(_IPAD))
        self._outer = hashlib.sha256(block.translate(_OPAD))

    def mac(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def b64url(data: bytes) -> str:
    """Unpadded base64url text (RFC 4648 section 5), as tokens and pseudonyms carry it."""
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=").decode()


def pseudonym_function(subkey: bytes, prefix: str, length: int = 16) -> Callable[[bytes], str]:
    """The keyed pseudonym of a value: ``prefix`` + base64url of its HMAC-SHA256 under ``subkey``,
    truncated to ``length`` bytes. ``subkey`` comes from ``derive_key`` (or ``Keys.derive``)."""
    mac = HmacSha256(subkey).mac

    def pseudonym(value: bytes) -> str:
        return prefix + b64url(mac(value)[:length])

    return pseudonym


def pseudonym_prefix(key_name: str, version: int, scheme: str = PSEUDONYM_SCHEME) -> str:
    """``<scheme>.<key>.<version>.``: every pseudonym and token names the key version that made it."""
    return f"{scheme}.{key_name}.{version}."


def token_function(keys: DerivesKeys, key_name: str, version: int) -> Callable[[str], str]:
    """Reversible deterministic encryption of text under one key version: ``tk1.<key>.<version>.<data>``.

    The prefix is the associated data, so a token moved to another key or version does not verify."""
    siv = AESSIV(keys.derive(key_name, version, TOKENIZE_PURPOSE, TOKEN_KEY_BYTES))
    prefix = pseudonym_prefix(key_name, version, TOKEN_SCHEME)
    aad = [prefix.encode()]

    def token(value: str) -> str:
        return prefix + b64url(siv.encrypt(value.encode(), aad))

    return token


class TokenError(Exception):
    """A token that is malformed, tampered with, or from a key not in the keys file."""


def detokenize(keys: DerivesKeys, token: str) -> str:
    """The text a ``tokenize`` token was made from; raises ``TokenError`` when it does not verify."""
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != TOKEN_SCHEME or not parts[2].isdigit():
        raise TokenError("not a stream-anon token (expected tk1.<key>.<version>.<data>)")
    _, name, version, data = parts
    try:
        siv = AESSIV(keys.derive(name, int(version), TOKENIZE_PURPOSE, TOKEN_KEY_BYTES))
    except KeyError:
        raise TokenError(f"key {name}.{version} is not in the keys file") from None
    try:
        raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
        return siv.decrypt(raw, [pseudonym_prefix(name, int(version), TOKEN_SCHEME).encode()]).decode()
    except (InvalidTag, binascii.Error, ValueError, UnicodeDecodeError):
        raise TokenError("token does not verify: tampered, truncated or from another key") from None
