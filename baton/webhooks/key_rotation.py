"""Re-encrypting every stored webhook secret under the current ``BATON_SECRET_KEY``.

After a key change every process decrypts with the current key or one of
``BATON_SECRET_KEY_PREVIOUS``; this moves what is stored onto the current key, so the previous
keys can be removed. All or nothing: one transaction, and a secret that no configured key
decrypts stops it before anything is written, named by its row (never by its value).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import select

from baton.db.engine import session_scope
from baton.db.models import WebhookSource, WebhookSubscription, utcnow
from baton.db.types import as_utc
from baton.settings import Settings
from baton.webhooks import crypto


class KeyRotationError(Exception):
    """A stored secret that no configured key decrypts; nothing was changed."""


@dataclass
class Tally:
    """How many stored secrets of one kind were (or would be) re-encrypted."""

    reencrypted: int = 0
    current: int = 0
    dropped: int = 0


@dataclass
class RotationReport:
    """What ``rotate_key`` did, or would do on a dry run, per kind of stored secret."""

    dry_run: bool
    kinds: dict[str, Tally] = field(default_factory=dict)

    @property
    def reencrypted(self) -> int:
        return sum(t.reencrypted for t in self.kinds.values())

    @property
    def current(self) -> int:
        return sum(t.current for t in self.kinds.values())

    @property
    def dropped(self) -> int:
        return sum(t.dropped for t in self.kinds.values())


def _under_current(token: str, current: Fernet) -> bool:
    try:
        current.decrypt(token.encode())
    except InvalidToken:
        return False
    return True


def _rotated(token: str, current: Fernet, keys: MultiFernet, tally: Tally, row: str) -> str:
    """``token`` under the current key (the same token if it already is); counts it."""
    if _under_current(token, current):
        tally.current += 1
        return token
    try:
        rotated = keys.rotate(token.encode()).decode()
    except InvalidToken:
        raise KeyRotationError(
            f"{row}: its secret cannot be decrypted with BATON_SECRET_KEY nor any key in "
            "BATON_SECRET_KEY_PREVIOUS (add the key it was encrypted under to "
            "BATON_SECRET_KEY_PREVIOUS, or give it a new secret); nothing was changed"
        ) from None
    tally.reencrypted += 1
    return rotated


def rotate_key(url: str, settings: Settings, *, dry_run: bool = False) -> RotationReport:
    """Re-encrypt every stored webhook secret at ``url`` under the current key.

    Sources' current secrets, their previous secrets while the grace period lasts (one whose
    grace period is over is never read again, so it is dropped rather than carried over), and
    every subscription's secret, ended ones included. Idempotent: a second run finds every
    secret already current.

    Raises:
        KeyRotationError: a stored secret that no configured key decrypts (nothing changed).
        SecretKeyError: a configured key is malformed.
    """
    current = crypto.current_cipher(settings)
    keys = crypto.cipher(settings)
    report = RotationReport(dry_run=dry_run)
    sources = report.kinds.setdefault("source secrets", Tally())
    previous = report.kinds.setdefault("previous source secrets", Tally())
    subscriptions = report.kinds.setdefault("subscription secrets", Tally())
    now = utcnow()
    with session_scope(url) as s:
        # Locked (on Postgres) so a concurrent rotate-secret or subscribe waits for this one.
        for src in s.scalars(select(WebhookSource).order_by(WebhookSource.name).with_for_update()):
            row = f"webhook source {src.name!r}"
            token = _rotated(src.secret_encrypted, current, keys, sources, row)
            if not dry_run:
                src.secret_encrypted = token
            if src.previous_secret_encrypted is None:
                continue
            until = src.previous_valid_until
            if until is None or as_utc(until) <= now:
                previous.dropped += 1
                if not dry_run:
                    src.previous_secret_encrypted = None
                continue
            old = _rotated(
                src.previous_secret_encrypted, current, keys, previous, f"{row} (previous secret)"
            )
            if not dry_run:
                src.previous_secret_encrypted = old
        for sub in s.scalars(
            select(WebhookSubscription).order_by(WebhookSubscription.created_at).with_for_update()
        ):
            token = _rotated(
                sub.secret_encrypted, current, keys, subscriptions, f"subscription {sub.id}"
            )
            if not dry_run:
                sub.secret_encrypted = token
        # An error above leaves session_scope by its exception: rolled back, nothing written.
    return report
