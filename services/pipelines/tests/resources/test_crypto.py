"""Envelope encryption of resource data: configuration, key ids, rotation, tamper detection."""

from __future__ import annotations

import base64
import logging
import uuid

import pytest

from icp_pipelines.crypto import Cipher, CryptoConfigError, KeyUnavailable
from icp_pipelines.settings import Settings

ORG, ROW = uuid.uuid4(), uuid.uuid4()
KEY_A, KEY_B = b"a" * 32, b"b" * 32


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_seal_and_open_round_trip_with_a_fresh_data_key_per_row():
    cipher = Cipher({"a": KEY_A}, "a")
    one = cipher.seal(b'{"x":1}', org_id=ORG, row_id=ROW)
    two = cipher.seal(b'{"x":1}', org_id=ORG, row_id=ROW)
    assert one.key_id == "a" and one.data != two.data and one.wrapped_key != two.wrapped_key
    assert cipher.open(one.data, one.wrapped_key, one.key_id, org_id=ORG, row_id=ROW) == b'{"x":1}'
    with pytest.raises(KeyUnavailable):
        cipher.open(one.data, one.wrapped_key, one.key_id, org_id=uuid.uuid4(), row_id=ROW)
    with pytest.raises(KeyUnavailable):
        cipher.open(one.data[:-1] + bytes([one.data[-1] ^ 1]), one.wrapped_key, "a", org_id=ORG, row_id=ROW)


def test_rotation():
    old = Cipher({"a": KEY_A}, "a").seal(b"secret", org_id=ORG, row_id=ROW)
    rotated = Cipher({"a": KEY_A, "b": KEY_B}, "b")
    assert rotated.open(old.data, old.wrapped_key, "a", org_id=ORG, row_id=ROW) == b"secret"
    assert rotated.seal(b"new", org_id=ORG, row_id=ROW).key_id == "b"
    wrapped, key_id = rotated.rewrap(old.wrapped_key, "a")
    assert key_id == "b"
    only_b = Cipher({"b": KEY_B}, "b")
    assert only_b.open(old.data, wrapped, key_id, org_id=ORG, row_id=ROW) == b"secret"
    with pytest.raises(KeyUnavailable, match="Encryption key 'a' is not configured"):
        only_b.open(old.data, old.wrapped_key, "a", org_id=ORG, row_id=ROW)


def test_keys_from_configuration(monkeypatch):
    monkeypatch.setenv("INTERLOPER_ENCRYPTION_KEYS", f'{{"k1": "{b64(KEY_A)}", "k2": "{b64(KEY_B)}"}}')
    monkeypatch.setenv("INTERLOPER_ENCRYPTION_ACTIVE_KEY", "k2")
    cipher = Cipher.from_settings(Settings(internal_secret="s"))
    assert cipher.active_key_id == "k2"
    monkeypatch.setenv("INTERLOPER_ENCRYPTION_ACTIVE_KEY", "k9")
    with pytest.raises(CryptoConfigError):
        Cipher.from_settings(Settings(internal_secret="s"))
    monkeypatch.setenv("INTERLOPER_ENCRYPTION_KEYS", '{"k1": "too-short"}')
    with pytest.raises(CryptoConfigError):
        Cipher.from_settings(Settings(internal_secret="s"))


def test_reference_variable_and_dev_fallback(monkeypatch, caplog):
    monkeypatch.delenv("INTERLOPER_ENCRYPTION_KEYS", raising=False)
    monkeypatch.setenv("SECRETS_ENCRYPTION_KEY", b64(KEY_A))
    first = Cipher.from_settings(Settings(internal_secret="s"))
    assert first.active_key_id.startswith("sek-")
    assert Cipher.from_settings(Settings(internal_secret="other")).active_key_id == first.active_key_id
    monkeypatch.setenv("SECRETS_ENCRYPTION_KEY", "any passphrase")
    assert Cipher.from_settings(Settings(internal_secret="s")).active_key_id.startswith("sek-")
    monkeypatch.delenv("SECRETS_ENCRYPTION_KEY")
    with caplog.at_level(logging.WARNING, logger="icp_pipelines.crypto"):
        dev = Cipher.from_settings(Settings(internal_secret="s"))
    assert dev.active_key_id.startswith("dev-")
    assert "development key" in caplog.text
    sealed = dev.seal(b"x", org_id=ORG, row_id=ROW)
    again = Cipher.from_settings(Settings(internal_secret="s"))
    assert again.open(sealed.data, sealed.wrapped_key, sealed.key_id, org_id=ORG, row_id=ROW) == b"x"
