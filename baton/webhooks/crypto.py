"""Encryption at rest of webhook secrets.

A secret must stay usable for HMAC, so it cannot be stored as a hash. It is encrypted with
Fernet (AES-128-CBC + HMAC-SHA256) under ``BATON_SECRET_KEY``; the embedded default generates
a key once in ``<data_dir>/secret.key`` (mode 0600). Losing that key makes the stored secrets
unreadable: rotate every source and subscription then.

Rotating the key: the keys it replaced go in ``BATON_SECRET_KEY_PREVIOUS``; secrets are
decrypted with any of them (MultiFernet) and always encrypted with the current one, and
``baton secrets rotate-key`` (``key_rotation.py``) re-encrypts what is stored under the current
key so the previous ones can be dropped.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

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


def current_cipher(settings: Settings) -> Fernet:
    """The Fernet cipher under the current (configured or generated) key.

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


def previous_ciphers(settings: Settings) -> list[Fernet]:
    """The ciphers under the keys in BATON_SECRET_KEY_PREVIOUS, in the order given.

    Raises:
        SecretKeyError: an entry is not a Fernet key (named by its position, never its value).
    """
    if settings.secret_key_previous is None:
        return []
    keys = settings.secret_key_previous.get_secret_value().split(",")
    ciphers = []
    for position, key in enumerate(keys, start=1):
        if not key.strip():
            continue  # a trailing comma, or the variable set empty
        try:
            ciphers.append(Fernet(key.strip().encode()))
        except ValueError:
            # Not chained: the original error could quote the value.
            raise SecretKeyError(
                f"BATON_SECRET_KEY_PREVIOUS: entry {position} of {len(keys)} must be 32 bytes "
                "in urlsafe base64 (Fernet.generate_key()), entries separated by commas"
            ) from None
    return ciphers


def cipher(settings: Settings) -> MultiFernet:
    """Encrypts under the current key; decrypts under it or any previous one.

    Raises:
        SecretKeyError: BATON_SECRET_KEY or an entry of BATON_SECRET_KEY_PREVIOUS is malformed.
    """
    return MultiFernet([current_cipher(settings), *previous_ciphers(settings)])


def encrypt(settings: Settings, secret: str) -> str:
    """The secret encrypted for storage, always under the current key."""
    return current_cipher(settings).encrypt(secret.encode()).decode()


def decrypt(settings: Settings, token: str) -> str:
    """A stored secret in clear, for signing only.

    Raises:
        SecretKeyError: it was encrypted under none of the configured keys.
    """
    try:
        return cipher(settings).decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretKeyError(
            "a stored webhook secret cannot be decrypted with the current BATON_SECRET_KEY "
            "(nor any key in BATON_SECRET_KEY_PREVIOUS)"
        ) from exc
