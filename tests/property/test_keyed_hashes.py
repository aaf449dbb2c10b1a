"""The hand-keyed HMAC and the base64url helper give exactly what the standard library gives.

Pseudonyms must never change between releases (downstream joins depend on them), so the fast paths
are held to ``hmac.digest`` and ``base64.urlsafe_b64encode`` over every key length and message.
"""

from __future__ import annotations

import base64
import hmac
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from stream_anon.config import Settings
from stream_anon.crypto import HmacSha256, b64url, pseudonym_function, pseudonym_prefix
from stream_anon.keys import Keys
from stream_anon.rules import compile_plan
from stream_anon.service import output_key_function


@given(key=st.binary(max_size=200), message=st.binary(max_size=300))
def test_mac_equals_the_standard_hmac_for_any_key_length(key: bytes, message: bytes) -> None:
    assert HmacSha256(key).mac(message) == hmac.digest(key, message, "sha256")


def test_mac_at_the_block_size_boundaries() -> None:
    # 64 bytes is used as is, 65 is hashed first: the two branches of keying
    for size in (0, 1, 63, 64, 65, 128):
        key = bytes(range(size % 256)) if size < 256 else b""
        key = (key * 2)[:size]
        assert HmacSha256(key).mac(b"value") == hmac.digest(key, b"value", "sha256")


def test_mac_keeps_no_state_between_values() -> None:
    mac = HmacSha256(b"k" * 32).mac
    first = mac(b"a")
    mac(b"b" * 1000)
    assert mac(b"a") == first


@given(data=st.binary(max_size=100))
def test_b64url_equals_unpadded_urlsafe_base64(data: bytes) -> None:
    assert b64url(data) == base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_hmac_pseudonyms_are_the_documented_construction() -> None:
    keys = Keys.generate()
    version, _ = keys.active("default")
    secret = keys.derive("default", version, "hmac")
    schema = {
        "type": "record",
        "name": "R",
        "fields": [{"name": "email", "type": "string", "anon": {"op": "hmac", "normalize": "lower"}}],
    }
    [out] = compile_plan(schema, keys).apply_batch([{"email": "Anna@Example.org"}])
    expected = base64.urlsafe_b64encode(hmac.digest(secret, b"anna@example.org", "sha256")[:16])
    assert out == {"email": f"hm1.default.{version}.{expected.rstrip(b'=').decode()}"}
    scan_pseudonym = pseudonym_function(secret, pseudonym_prefix("default", version))
    assert scan_pseudonym(b"anna@example.org") == out["email"]


def test_output_keys_are_the_documented_construction(tmp_path: Path) -> None:
    keys = Keys.generate()
    keys.save(tmp_path / "keys.json")
    version, _ = keys.active("default")
    # keyed like every rule: an HKDF subkey of its own, never the raw secret
    subkey = keys.derive("default", version, "output_key")
    pseudonym = output_key_function(Settings(keys_file=tmp_path / "keys.json", output_key="hmac"))
    expected = base64.urlsafe_b64encode(hmac.digest(subkey, b"user-42", "sha256")[:16]).rstrip(b"=")
    assert pseudonym(b"user-42") == f"k2.default.{version}.".encode() + expected
    assert pseudonym(None) is None
