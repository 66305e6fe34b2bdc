"""Encryption at rest of webhook secrets.

A secret must stay usable for HMAC, so it cannot be stored as a hash. It is encrypted with
Fernet (AES-128-CBC + HMAC-SHA256) under ``BATON_SECRET_KEY``; the embedded default generates
a key once in ``<data_dir>/secret.key`` (mode 0600). Losing that key makes the stored secrets
unreadable: rotate every source and subscription then.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from baton.settings import Settings

KEY_FILE = "secret.key"


class SecretKeyError(Exception):
    """The key is malformed, or a stored secret was encrypted under another key."""


def _key_file(data_dir: Path) -> bytes:
    path = data_dir / KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        # Written whole under a private name, then linked into place: of processes starting at
        # once, the first link wins and the others read its key; none reads a half-written one.
        partial = data_dir / f".{KEY_FILE}.{os.getpid()}.tmp"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(Fernet.generate_key())
        try:
            os.link(partial, path)
        except FileExistsError:
            pass
        finally:
            partial.unlink()
    return path.read_bytes().strip()


def cipher(settings: Settings) -> Fernet:
    """The Fernet cipher under the configured (or generated) key.

    Raises:
        SecretKeyError: BATON_SECRET_KEY is not a Fernet key.
    """
    if settings.secret_key is not None:
        key = settings.secret_key.get_secret_value().encode()
    else:
        key = _key_file(settings.data_dir)
    try:
        return Fernet(key)
    except ValueError as exc:
        raise SecretKeyError(
            "BATON_SECRET_KEY must be 32 bytes in urlsafe base64 (Fernet.generate_key())"
        ) from exc


def encrypt(settings: Settings, secret: str) -> str:
    """The secret encrypted for storage."""
    return cipher(settings).encrypt(secret.encode()).decode()


def decrypt(settings: Settings, token: str) -> str:
    """A stored secret in clear, for signing only.

    Raises:
        SecretKeyError: it was encrypted under another key.
    """
    try:
        return cipher(settings).decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretKeyError(
            "a stored webhook secret cannot be decrypted with the current BATON_SECRET_KEY"
        ) from exc
