"""Deliverables: what steps produced for people, each version kept."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from baton.db.models import Deliverable


class DeliverablesRepository:
    """Deliverable rows; a step that produces the same name again gets a new version."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def next_version(self, run_id: uuid.UUID, step_id: str, name: str) -> int:
        current = self.session.scalar(
            select(func.max(Deliverable.version)).where(
                Deliverable.run_id == run_id,
                Deliverable.step_id == step_id,
                Deliverable.name == name,
            )
        )
        return int(current or 0) + 1

    def add(self, **fields: Any) -> Deliverable:
        row = Deliverable(**fields)
        self.session.add(row)
        self.session.flush()
        return row

    def list(self, run_id: uuid.UUID, step_id: str | None = None) -> Sequence[Deliverable]:
        query = select(Deliverable).where(Deliverable.run_id == run_id)
        if step_id is not None:
            query = query.where(Deliverable.step_id == step_id)
        return self.session.scalars(
            query.order_by(Deliverable.step_id, Deliverable.name, Deliverable.version)
        ).all()
