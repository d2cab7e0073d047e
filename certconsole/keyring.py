"""Encryption at rest for private keys and credentials (MultiFernet keyring).

CERTCONSOLE_KEYRING holds comma-separated Fernet keys, newest first: new
secrets are encrypted with the first key, and any key of the ring decrypts.
`rotate_keyring` re-encrypts everything under the first key.
"""

import hashlib
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class KeyringError(RuntimeError):
    """A secret cannot be decrypted with any key of the keyring."""


@cache
def _ring(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in keys])


def ring() -> MultiFernet:
    """The MultiFernet built from settings.CERTCONSOLE_KEYRING."""
    return _ring(tuple(settings.CERTCONSOLE_KEYRING))


def encrypt(plaintext: bytes) -> str:
    """Encrypt with the newest key; returns an ASCII token for a text column."""
    return ring().encrypt(plaintext).decode("ascii")


def decrypt(token: str) -> bytes:
    """Decrypt a token made by encrypt() with any key of the ring."""
    try:
        return ring().decrypt(token.encode("ascii"))
    except InvalidToken as exc:
        raise KeyringError("No key of CERTCONSOLE_KEYRING decrypts this secret.") from exc


def rotate(token: str) -> str:
    """Re-encrypt a token under the newest key."""
    try:
        return ring().rotate(token.encode("ascii")).decode("ascii")
    except InvalidToken as exc:
        raise KeyringError("No key of CERTCONSOLE_KEYRING decrypts this secret.") from exc


def primary_key_id() -> str:
    """A short, non-secret identifier of the newest key (for logs and audit)."""
    return hashlib.sha256(settings.CERTCONSOLE_KEYRING[0].encode()).hexdigest()[:12]
