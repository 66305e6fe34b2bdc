"""Inbound webhook sources: who may post to ``/webhooks/{name}``, for which organization.

Secrets are shown once when created or rotated and stored encrypted (``crypto.py``); a
rotation keeps the previous secret valid for a grace period so senders can switch over.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from baton.db.engine import session_scope
from baton.db.models import WebhookSource, utcnow
from baton.settings import Settings
from baton.webhooks import crypto
from baton.webhooks.signing import generate_secret

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")


class SourceError(ValueError):
    """A source name that is malformed, taken or unknown."""


@dataclass(frozen=True)
class SourceInfo:
    """A source without its secrets."""

    name: str
    organization: str
    created_at: datetime
    rotated_at: datetime | None
    previous_valid_until: datetime | None


@dataclass(frozen=True)
class Verification:
    """What the receiving route needs: the organization and the secrets valid now."""

    organization: str
    secrets: list[str]


def _aware(value: datetime) -> datetime:
    # SQLite returns naive datetimes for timezone-aware columns; they were stored in UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=utcnow().tzinfo)


class Sources:
    """Create, rotate and look up webhook sources at one database."""

    def __init__(self, url: str, settings: Settings) -> None:
        self.url = url
        self.settings = settings

    def add(self, name: str, organization: str) -> str:
        """Create a source; returns its new secret (shown once, never stored in clear).

        Raises:
            SourceError: the name is malformed or already used.
        """
        if not NAME.match(name):
            raise SourceError(
                f"source name {name!r}: expected lower-case letters, digits, '-' or '_' "
                "(at most 100, starting with a letter or digit)"
            )
        if not organization.strip():
            raise SourceError("organization: expected a non-empty name")
        secret = generate_secret()
        row = WebhookSource(
            name=name,
            organization=organization,
            secret_encrypted=crypto.encrypt(self.settings, secret),
        )
        try:
            with session_scope(self.url) as s:
                s.add(row)
                s.flush()
        except IntegrityError as exc:
            raise SourceError(f"source name {name!r}: already exists") from exc
        return secret

    def rotate(self, name: str, grace: timedelta) -> str:
        """Give a source a new secret; the old one stays valid for ``grace``.

        Raises:
            SourceError: no such source.
        """
        secret = generate_secret()
        with session_scope(self.url) as s:
            row = self._get(s, name)
            now = utcnow()
            row.previous_secret_encrypted = row.secret_encrypted
            row.previous_valid_until = now + grace
            row.secret_encrypted = crypto.encrypt(self.settings, secret)
            row.rotated_at = now
        return secret

    def list(self, organization: str | None = None) -> Sequence[SourceInfo]:
        """Every source (of one organization), by name."""
        query = select(WebhookSource).order_by(WebhookSource.name)
        if organization is not None:
            query = query.where(WebhookSource.organization == organization)
        with session_scope(self.url) as s:
            return [
                SourceInfo(
                    r.name, r.organization, r.created_at, r.rotated_at, r.previous_valid_until
                )
                for r in s.scalars(query)
            ]

    def remove(self, name: str) -> None:
        """Delete a source; its inbox rows stay (they are a record of what arrived).

        Raises:
            SourceError: no such source.
        """
        with session_scope(self.url) as s:
            s.delete(self._get(s, name))

    def verification(self, name: str) -> Verification | None:
        """The organization and the secrets valid now, or None for an unknown source."""
        with session_scope(self.url) as s:
            row = s.scalar(select(WebhookSource).where(WebhookSource.name == name))
            if row is None:
                return None
            secrets = [crypto.decrypt(self.settings, row.secret_encrypted)]
            until = row.previous_valid_until
            if row.previous_secret_encrypted and until and _aware(until) > utcnow():
                secrets.append(crypto.decrypt(self.settings, row.previous_secret_encrypted))
            return Verification(row.organization, secrets)

    @staticmethod
    def _get(s: Session, name: str) -> WebhookSource:
        row = s.scalar(select(WebhookSource).where(WebhookSource.name == name))
        if row is None:
            raise SourceError(f"source {name!r}: no such webhook source")
        return row
