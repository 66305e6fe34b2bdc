"""Who is calling: bearer tokens resolved to a principal, and role checks for routes.

Roles and what they allow (admin implies everything; every role may read):

| role     | read (GET) | launch, abort, retry, skip | decide approvals |
|----------|------------|----------------------------|------------------|
| viewer   | yes        | no                         | no               |
| operator | yes        | yes                        | no               |
| approver | yes        | no                         | yes (*)          |
| admin    | yes        | yes                        | yes (*)          |

(*) only where the checkpoint lists the user or a group of theirs (the approvals service
checks that, with votes and self-approval).

Operator and approver are deliberately separate: the person who launches a run should not be
able to wave it through its own checkpoints with the same token. Every query is scoped to the
principal's organization; another organization's things answer 404, as if absent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from baton.api.errors import ApiError
from baton.db.engine import session_scope
from baton.db.models import API_ROLES
from baton.settings import get_settings
from baton.store.tokens import TokensRepository

ROLES = API_ROLES
_bearer = HTTPBearer(auto_error=False, description="An API token: `baton tokens create`.")


@dataclass(frozen=True)
class Principal:
    """The user a request acts for, through one of their tokens."""

    user_id: int
    user_name: str
    organization: str
    groups: tuple[str, ...]
    role: str
    token_id: int

    def can(self, required: str) -> bool:
        """Whether this principal's role grants what ``required`` names."""
        return allows(self.role, required)


def allows(role: str, required: str) -> bool:
    """Viewer is the floor, admin the ceiling; operator and approver grant only themselves."""
    return required == "viewer" or role == required or role == "admin"


def authenticate(raw_token: str, url: str | None = None) -> Principal | None:
    """The principal of a live token, or None (unknown, revoked, or its user deleted).

    Args:
        raw_token: the token as the client sent it.
        url: Baton's database; default the process settings' database.
    """
    if not raw_token:
        return None
    with session_scope(url or get_settings().db_url) as session:
        repo = TokensRepository(session)
        found = repo.find_live(raw_token)
        if found is None:
            return None
        repo.touch(found.token.id)
        user = found.user
        return Principal(
            user_id=user.id,
            user_name=user.name,
            organization=user.organization,
            groups=tuple(user.groups or ()),
            role=found.token.role,
            token_id=found.token.id,
        )


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def require(role: str) -> Callable[..., Principal]:
    """A dependency giving the caller's principal if their token grants ``role``.

    Answers 401 without a valid token and 403 when the token's role is too weak.

    Raises:
        ValueError: ``role`` is not a known role (a programming error, at import time).
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got '{role}'")

    def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
    ) -> Principal:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise _unauthorized("an API token is required: Authorization: Bearer <token>")
        principal = authenticate(credentials.credentials, request.app.state.settings.db_url)
        if principal is None:
            raise _unauthorized("the API token is unknown or revoked")
        if not principal.can(role):
            raise ApiError(
                403,
                "forbidden",
                f"this needs the {role} role (or admin); the token has {principal.role}",
            )
        request.state.principal = principal
        return principal

    return dependency
