"""API tokens: created for a user, looked up by hash, listed, revoked.

The token itself is shown once when created and never stored: only its SHA-256 hex digest
and its first characters (to tell tokens apart in a listing) reach the table.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from baton.db.models import API_ROLES, ApiToken, User, utcnow

TOKEN_PREFIX = "bt_"
# Enough to tell tokens apart in a listing, far too little to guess the rest.
SHOWN_CHARS = 8


def hash_token(raw: str) -> str:
    """The stored form of a token: SHA-256 hex (tokens are random, so no salt is needed)."""
    return hashlib.sha256(raw.encode()).hexdigest()


def new_token() -> str:
    """A fresh random token, ``bt_`` followed by 43 URL-safe characters."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class TokenOwner:
    """A live token with the user it speaks for."""

    token: ApiToken
    user: User


class TokensRepository:
    """Token rows of one session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def create(self, user: User, *, role: str, name: str = "") -> tuple[ApiToken, str]:
        """A new token for ``user``; returns the row and the raw token (shown once).

        Raises:
            ValueError: ``role`` is not one of viewer, operator, approver, admin.
        """
        if role not in API_ROLES:
            raise ValueError(f"role must be one of {', '.join(API_ROLES)}, got '{role}'")
        raw = new_token()
        row = ApiToken(
            user_id=user.id,
            name=name,
            role=role,
            token_hash=hash_token(raw),
            prefix=raw[:SHOWN_CHARS],
            created_at=utcnow(),
        )
        self.session.add(row)
        self.session.flush()
        return row, raw

    def find_live(self, raw: str) -> TokenOwner | None:
        """The unrevoked token matching ``raw`` with its user, or None."""
        row = self.session.execute(
            select(ApiToken, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == hash_token(raw), ApiToken.revoked_at.is_(None))
        ).first()
        return TokenOwner(row[0], row[1]) if row is not None else None

    def touch(self, token_id: int) -> None:
        """Record that the token was just used."""
        self.session.execute(
            update(ApiToken)
            .where(ApiToken.id == token_id)
            .values(last_used_at=utcnow())
            .execution_options(synchronize_session=False)
        )

    def list(self, organization: str | None = None) -> Sequence[tuple[ApiToken, User]]:
        """Tokens with their users, oldest first."""
        query = select(ApiToken, User).join(User, User.id == ApiToken.user_id)
        if organization is not None:
            query = query.where(User.organization == organization)
        rows = self.session.execute(query.order_by(ApiToken.id)).all()
        return [(r[0], r[1]) for r in rows]

    def revoke(self, token_id: int) -> bool:
        """Revoke a token; False if there is no such live token."""
        result = self.session.execute(
            update(ApiToken)
            .where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]
