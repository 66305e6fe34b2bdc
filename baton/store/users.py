"""Users: who may approve, in which organization, with which groups."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from baton.db.models import User


class UsersRepository:
    """Users keyed by (organization, name)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def upsert(self, *, organization: str, name: str, groups: Sequence[str]) -> User:
        """Create the user, or replace its groups."""
        user = self.get(organization, name)
        if user is None:
            user = User(organization=organization, name=name, groups=sorted(set(groups)))
            self.session.add(user)
        else:
            user.groups = sorted(set(groups))
        self.session.flush()
        return user

    def get(self, organization: str, name: str) -> User | None:
        return self.session.scalar(
            select(User).where(User.organization == organization, User.name == name)
        )

    def list(self, organization: str | None = None) -> Sequence[User]:
        query = select(User).order_by(User.organization, User.name)
        if organization is not None:
            query = query.where(User.organization == organization)
        return self.session.scalars(query).all()
