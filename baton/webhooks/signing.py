"""Standard Webhooks signatures: HMAC-SHA256 over ``id.timestamp.body``, base64 encoded.

A secret is ``whsec_`` followed by the base64 of its key bytes. The ``webhook-signature``
header is a space-separated list of ``v1,<base64 signature>`` entries, so a sender can sign
with an old and a new secret at once during a rotation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping

PREFIX = "whsec_"
SECRET_BYTES = 24
VERSION = "v1"


class SignatureError(Exception):
    """A request whose signature headers are missing, stale or do not match.

    Attributes:
        reason: a short machine-readable reason (``missing_headers``, ``bad_timestamp``,
            ``stale_timestamp``, ``bad_signature``), used as a metrics label.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def generate_secret() -> str:
    """A new ``whsec_`` secret of 24 random bytes."""
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a secret (the ``whsec_`` prefix is optional).

    Raises:
        ValueError: the part after the prefix is not base64.
    """
    encoded = secret.removeprefix(PREFIX)
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise ValueError("a webhook secret is 'whsec_' followed by base64") from exc


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<signature>`` of one message."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return f"{VERSION},{base64.b64encode(digest).decode()}"


def headers(secret: str, webhook_id: str, body: bytes, *, now: int | None = None) -> dict[str, str]:
    """The three headers a sender adds to a request carrying ``body``."""
    timestamp = int(time.time()) if now is None else now
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, webhook_id, timestamp, body),
    }


def verify(
    secrets_: Iterable[str],
    request_headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_seconds: int = 300,
    now: int | None = None,
) -> str:
    """Check a request's signature against any of ``secrets_``; returns its webhook id.

    Args:
        secrets_: the secrets currently valid (during a rotation, the new and the old one).
        request_headers: the request's headers, names in lower case.
        body: the exact bytes received.
        tolerance_seconds: how far the timestamp may be from now, in either direction.
        now: the current Unix time (tests).

    Raises:
        SignatureError: a header is missing, the timestamp is malformed or out of tolerance,
            or no signature matches.
    """
    webhook_id = request_headers.get("webhook-id", "")
    raw_timestamp = request_headers.get("webhook-timestamp", "")
    signatures = request_headers.get("webhook-signature", "")
    if not webhook_id or not raw_timestamp or not signatures:
        raise SignatureError(
            "missing_headers", "webhook-id, webhook-timestamp and webhook-signature are required"
        )
    try:
        timestamp = int(raw_timestamp)
    except ValueError as exc:
        raise SignatureError(
            "bad_timestamp", "webhook-timestamp must be Unix seconds (an integer)"
        ) from exc
    current = int(time.time()) if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        raise SignatureError(
            "stale_timestamp",
            f"webhook-timestamp is more than {tolerance_seconds} seconds from the server's time",
        )
    offered = [part.strip() for part in signatures.split(" ") if part.strip()]
    for secret in secrets_:
        expected = sign(secret, webhook_id, timestamp, body)
        # Compare every candidate in constant time; no early exit on a prefix.
        if any(hmac.compare_digest(expected.encode(), sig.encode()) for sig in offered):
            return webhook_id
    raise SignatureError("bad_signature", "no webhook-signature matches the source's secret")
