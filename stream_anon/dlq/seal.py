"""Sealing dead letters at rest, so the dead-letter topic is not one more readable copy of raw PII.

With ``"dlq_encryption_key": NAME`` in the keys file, the worker writes each dead letter's key and value
sealed with AES-SIV (``cryptography``) under a subkey derived from NAME's active version for this purpose
only; the headers stay readable (the summary needs no key) and say which key version sealed the record.
``replay`` opens them again. Destroying a key version (``stream-anon keys destroy``) makes everything it
sealed unreadable for good: a way to erase dead letters that retention has not removed yet.

Why SIV: it needs no nonce, so no nonce can repeat and no record count limits a key version, and it is
deterministic, so the worker can compute a dead letter's bytes again to match a failed write. The
associated data binds each sealed part to its source record (topic, partition, offset) and to whether it
is the key or the value: sealed bytes moved onto another dead letter do not open. The same bytes come out
only for the same source record with the same content (a batch processed again after an abort).
A null key or value (a tombstone) stays null: there is nothing to hide and a tombstone must stay one.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from stream_anon.crypto import DLQ_SEAL_PURPOSE
from stream_anon.dlq.letter import Letter
from stream_anon.keys import Keys, KeysError
from stream_anon.records import SEAL_HEADER, SEAL_KEY_HEADER, SEAL_VERSION_HEADER, DeadLetter

SCHEME = "aes-siv/1"


class SealError(Exception):
    """A sealed dead letter cannot be opened: unknown scheme, key or key version, or tampered bytes."""


def _context(part: bytes, topic: str, partition: int, offset: int) -> list[bytes]:
    label = f"stream-anon/{SCHEME}/".encode() + part
    return [label, topic.encode(), b"%d" % partition, b"%d" % offset]


class DeadLetterSeal:
    """Seals dead letters with the keys file's ``dlq_encryption_key`` and opens any sealed by its keys."""

    def __init__(self, keys: Keys) -> None:
        self._keys = keys
        self._ciphers: dict[tuple[str, int], AESSIV] = {}

    @property
    def sealing(self) -> bool:
        """Whether new dead letters are sealed (the keys file names a ``dlq_encryption_key``)."""
        return self._keys.dlq_encryption_key is not None

    def _cipher(self, name: str, version: int) -> AESSIV:
        found = self._ciphers.get((name, version))
        if found is None:
            subkey = self._keys.derive(name, version, DLQ_SEAL_PURPOSE, 64)  # AES-SIV: two 256-bit keys
            found = self._ciphers[(name, version)] = AESSIV(subkey)
        return found

    def seal(self, letter: DeadLetter) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
        """The dead letter's key, value and headers as written to the topic, sealed."""
        name = self._keys.dlq_encryption_key
        if name is None:
            raise SealError("the keys file names no dlq_encryption_key")
        version, _ = self._keys.active(name)
        cipher = self._cipher(name, version)
        src = letter.source
        where = (src.topic, src.partition, src.offset)
        key = None if src.key is None else cipher.encrypt(src.key, _context(b"key", *where))
        value = None if src.value is None else cipher.encrypt(src.value, _context(b"value", *where))
        headers = [
            *letter.headers(),
            (SEAL_HEADER, SCHEME.encode()),
            (SEAL_KEY_HEADER, name.encode()),
            (SEAL_VERSION_HEADER, str(version).encode()),
        ]
        return key, value, headers

    def open(self, letter: Letter) -> tuple[bytes | None, bytes | None]:
        """The original key and value of a dead letter (unchanged if it was not sealed)."""
        seal = letter.seal
        if seal is None:
            return letter.key, letter.value
        if seal.scheme != SCHEME:
            raise SealError(f"sealed with {seal.scheme!r}, which this version cannot open")
        try:
            cipher = self._cipher(seal.key_name, seal.version)
        except KeysError:
            raise SealError(
                f"sealed under key {seal.key_name!r} version {seal.version}, which the keys file does not "
                "hold (destroyed, or another keys file)"
            ) from None
        where = (letter.source_topic, letter.source_partition, letter.source_offset)
        try:
            key = None if letter.key is None else cipher.decrypt(letter.key, _context(b"key", *where))
            value = None if letter.value is None else cipher.decrypt(letter.value, _context(b"value", *where))
        except InvalidTag:
            raise SealError(
                f"does not open with key {seal.key_name!r} version {seal.version}: its bytes or headers were "
                "altered, or the keys file is not the one that sealed it"
            ) from None
        return key, value
