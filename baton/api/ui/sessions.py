"""Sessions of the approvals page: random ids kept server-side, each with its CSRF token.

The cookie holds only a random session id; the principal and the CSRF token stay in this
process's memory, so nothing in the cookie can be forged or read. A session lives at most
``LIFETIME`` and ends with its token: every request checks that the token is still live.
Sessions do not survive a restart of the API (signing in again is one paste).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

from fastapi import FastAPI
from sqlalchemy import select

from baton.api.auth import Principal
from baton.db.engine import session_scope
from baton.db.models import ApiToken

COOKIE = "baton_session"
LOGIN_COOKIE = "baton_login_csrf"
LIFETIME = 8 * 3600.0
# Bounds memory if someone signs in in a loop; the oldest sessions go first.
MAX_SESSIONS = 10_000


def new_secret() -> str:
    """A random, URL-safe value with 256 bits of entropy."""
    return secrets.token_urlsafe(32)


def same(expected: str | None, given: str | None) -> bool:
    """Constant-time equality of two secrets; missing or empty never matches."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


@dataclass
class UiSession:
    """A signed-in browser: who it acts for and the token its forms must carry."""

    id: str
    principal: Principal
    csrf: str
    expires_at: float = field(default_factory=lambda: time.monotonic() + LIFETIME)


class SessionStore:
    """Sessions of one app, in memory, safe across the threads that serve requests."""

    def __init__(self) -> None:
        self._sessions: dict[str, UiSession] = {}
        self._lock = threading.Lock()

    def create(self, principal: Principal) -> UiSession:
        """A new session for ``principal`` with a fresh id and CSRF token."""
        session = UiSession(id=new_secret(), principal=principal, csrf=new_secret())
        with self._lock:
            while len(self._sessions) >= MAX_SESSIONS:
                self._sessions.pop(next(iter(self._sessions)))
            self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> UiSession | None:
        """The live session with this id, or None (unknown or expired)."""
        if not session_id:
            return None
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None and session.expires_at <= time.monotonic():
                del self._sessions[session_id]
                return None
        return session

    def drop(self, session_id: str | None) -> None:
        """End a session (sign out); unknown ids are ignored."""
        with self._lock:
            self._sessions.pop(session_id or "", None)


def sessions_for(app: FastAPI) -> SessionStore:
    """The app's session store, created on first use."""
    store = getattr(app.state, "ui_sessions", None)
    if store is None:
        store = SessionStore()
        app.state.ui_sessions = store
    return store


def token_is_live(url: str, token_id: int) -> bool:
    """Whether the token a session was opened with is still unrevoked."""
    with session_scope(url) as s:
        revoked = s.execute(
            select(ApiToken.revoked_at).where(ApiToken.id == token_id)
        ).one_or_none()
    return revoked is not None and revoked[0] is None
