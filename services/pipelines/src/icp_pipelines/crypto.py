"""Envelope encryption of resource data (AES-256-GCM).

Each row gets a fresh 256-bit data key; the data is encrypted with it (AAD = org id + row id, so a
ciphertext cannot be moved to another row or tenant) and the data key is wrapped with a
key-encryption key (KEK) from configuration, whose id is stored with the row. Rotating = add a new
key, make it active (new writes use it), old rows stay readable while their key is configured, and
`rewrap` moves a row to the active key without touching its data ciphertext.

Keys, in order of precedence:
* ``INTERLOPER_ENCRYPTION_KEYS`` (JSON ``{key_id: base64 32 bytes}``) + ``INTERLOPER_ENCRYPTION_ACTIVE_KEY``;
* ``SECRETS_ENCRYPTION_KEY`` (the reference's variable): base64 of 32 bytes, or any other string
  (stretched with SHA-256); key id ``sek-<fingerprint>``;
* neither: a development key derived from ``INTERLOPER_INTERNAL_SECRET`` (a warning is logged).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import uuid
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from icp_common.errors import DomainError

from .settings import Settings

log = logging.getLogger(__name__)

_NONCE = 12


class KeyUnavailable(DomainError):
    """Stored data whose key is not configured (an operator problem, not the client's)."""

    status_code = 503
    grpc_code = "FAILED_PRECONDITION"


class CryptoConfigError(ValueError):
    pass


def _decode_key(value: str) -> bytes | None:
    text = value.strip()
    for decoder in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            raw = decoder(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            continue
        if len(raw) == 32:
            return raw
    return None


def _fingerprint(key: bytes) -> str:
    return hashlib.sha256(b"kek-id:" + key).hexdigest()[:12]


@dataclass(frozen=True)
class Sealed:
    data: bytes
    wrapped_key: bytes
    key_id: str


class Cipher:
    """Seals and opens resource data with the configured key-encryption keys."""

    def __init__(self, keys: dict[str, bytes], active: str) -> None:
        if active not in keys:
            raise CryptoConfigError(f"active encryption key {active!r} is not among the configured keys")
        self._keys = {kid: AESGCM(key) for kid, key in keys.items()}
        self.active_key_id = active

    @classmethod
    def from_settings(cls, settings: Settings) -> Cipher:
        if settings.encryption_keys:
            keys: dict[str, bytes] = {}
            for kid, value in settings.encryption_keys.items():
                raw = _decode_key(value.get_secret_value())
                if raw is None:
                    raise CryptoConfigError(f"INTERLOPER_ENCRYPTION_KEYS[{kid!r}] is not base64 of 32 bytes")
                keys[kid] = raw
            active = settings.encryption_active_key or (next(iter(keys)) if len(keys) == 1 else "")
            if not active:
                raise CryptoConfigError("INTERLOPER_ENCRYPTION_ACTIVE_KEY must name one of INTERLOPER_ENCRYPTION_KEYS")
            return cls(keys, active)
        sek = settings.secrets_encryption_key.get_secret_value()
        if sek:
            raw = _decode_key(sek) or hashlib.sha256(sek.encode()).digest()
            kid = f"sek-{_fingerprint(raw)}"
            return cls({kid: raw}, kid)
        secret = settings.require_secret()
        raw = hmac.new(secret, b"resource-encryption-v1", hashlib.sha256).digest()
        log.warning(
            "no resource encryption key configured (INTERLOPER_ENCRYPTION_KEYS / SECRETS_ENCRYPTION_KEY): "
            "using a development key derived from INTERLOPER_INTERNAL_SECRET"
        )
        kid = f"dev-{_fingerprint(raw)}"
        return cls({kid: raw}, kid)

    def _kek(self, key_id: str) -> AESGCM:
        kek = self._keys.get(key_id)
        if kek is None:
            raise KeyUnavailable(f"Encryption key '{key_id}' is not configured")
        return kek

    @staticmethod
    def _aad(org_id: uuid.UUID, row_id: uuid.UUID) -> bytes:
        return f"resource:{org_id}:{row_id}".encode()

    def seal(self, plaintext: bytes, *, org_id: uuid.UUID, row_id: uuid.UUID) -> Sealed:
        data_key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(_NONCE)
        ciphertext = nonce + AESGCM(data_key).encrypt(nonce, plaintext, self._aad(org_id, row_id))
        return Sealed(ciphertext, self._wrap(data_key, self.active_key_id), self.active_key_id)

    def open(self, data: bytes, wrapped_key: bytes, key_id: str, *, org_id: uuid.UUID, row_id: uuid.UUID) -> bytes:
        data_key = self._unwrap(wrapped_key, key_id)
        try:
            return AESGCM(data_key).decrypt(data[:_NONCE], data[_NONCE:], self._aad(org_id, row_id))
        except Exception as exc:
            raise KeyUnavailable(f"Resource {row_id} cannot be decrypted") from exc

    def rewrap(self, wrapped_key: bytes, key_id: str) -> tuple[bytes, str]:
        """The same data key wrapped with the active key (rotation without re-encrypting data)."""
        return self._wrap(self._unwrap(wrapped_key, key_id), self.active_key_id), self.active_key_id

    def _wrap(self, data_key: bytes, key_id: str) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._kek(key_id).encrypt(nonce, data_key, f"kek:{key_id}".encode())

    def _unwrap(self, wrapped_key: bytes, key_id: str) -> bytes:
        try:
            return self._kek(key_id).decrypt(wrapped_key[:_NONCE], wrapped_key[_NONCE:], f"kek:{key_id}".encode())
        except KeyUnavailable:
            raise
        except Exception as exc:
            raise KeyUnavailable(f"Data key cannot be unwrapped with key '{key_id}'") from exc
