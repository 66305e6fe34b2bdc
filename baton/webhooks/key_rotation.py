"""Re-encrypting every stored webhook secret under the current ``BATON_SECRET_KEY``.

After a key change every process decrypts with the current key or one of
``BATON_SECRET_KEY_PREVIOUS``; this moves what is stored onto the current key, so the previous
keys can be removed. All or nothing: one transaction, and a secret that no configured key
decrypts stops it before anything is written, named by its row (never by its value).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import select
from sqlalchemy.orm import Session

from baton.db.engine import session_scope
from baton.db.models import WebhookSource, WebhookSubscription, utcnow
from baton.db.types import as_utc
from baton.settings import Settings
from baton.webhooks import crypto

SOURCES = "source secrets"
PREVIOUS = "previous source secrets"
SUBSCRIPTIONS = "subscription secrets"


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


@dataclass
class Stored:
    """One stored secret: its kind, the row named for people (never by its value), the token,
    and how to write a new token (or None) back; ``expired``: a previous secret past its grace
    period, never read again; ``ended``: an ended subscription's, never used again."""

    kind: str
    row: str
    token: str
    write: Callable[[str | None], None]
    since: datetime | None = None
    expired: bool = False
    ended: bool = False


def _stored(s: Session, now: datetime, *, lock: bool) -> Iterator[Stored]:
    """Every stored secret, in a fixed order: each source's secret and previous secret, then
    every subscription's (ended ones included, since rotation moves them too)."""
    sources = select(WebhookSource).order_by(WebhookSource.name)
    subscriptions = select(WebhookSubscription).order_by(WebhookSubscription.created_at)
    if lock:
        # Locked (on Postgres) so a concurrent rotate-secret or subscribe waits for this one.
        sources, subscriptions = sources.with_for_update(), subscriptions.with_for_update()
    for src in s.scalars(sources):
        row = f"webhook source {src.name!r}"
        since = _utc(src.rotated_at or src.created_at)
        yield Stored(SOURCES, row, src.secret_encrypted, _setter(src, "secret_encrypted"), since)
        if src.previous_secret_encrypted is None:
            continue
        until = src.previous_valid_until
        yield Stored(
            PREVIOUS,
            f"{row} (previous secret)",
            src.previous_secret_encrypted,
            _setter(src, "previous_secret_encrypted"),
            since,
            expired=until is None or as_utc(until) <= now,
        )
    for sub in s.scalars(subscriptions):
        ended = " (ended)" if sub.disabled_at is not None else ""
        yield Stored(
            SUBSCRIPTIONS,
            f"subscription {sub.id}{ended}",
            sub.secret_encrypted,
            _setter(sub, "secret_encrypted"),
            _utc(sub.created_at),
            ended=sub.disabled_at is not None,
        )


def _utc(value: datetime | None) -> datetime | None:
    return as_utc(value) if value is not None else None


def _setter(row: Any, column: str) -> Callable[[str | None], None]:
    return lambda token: setattr(row, column, token)


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
    for kind in (SOURCES, PREVIOUS, SUBSCRIPTIONS):
        report.kinds[kind] = Tally()
    now = utcnow()
    with session_scope(url) as s:
        for stored in _stored(s, now, lock=True):
            tally = report.kinds[stored.kind]
            if stored.expired:
                tally.dropped += 1
                token = None
            else:
                token = _rotated(stored.token, current, keys, tally, stored.row)
            if not dry_run:
                stored.write(token)
        # An error above leaves session_scope by its exception: rolled back, nothing written.
    return report


def undecryptable(s: Session, settings: Settings) -> list[Stored]:
    """The stored secrets that no configured key decrypts (what would stop ``rotate_key``),
    read without writing or locking.

    Raises:
        SecretKeyError: a configured key is malformed.
    """
    keys: MultiFernet | None = None
    found = []
    for stored in _stored(s, utcnow(), lock=False):
        if stored.expired:
            continue
        # Built at the first secret: with nothing stored, no key is read (nor generated).
        keys = keys or crypto.cipher(settings)
        try:
            keys.decrypt(stored.token.encode())
        except InvalidToken:
            found.append(stored)
    return found
