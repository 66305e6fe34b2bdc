"""The append-only event log. Rows are only ever inserted."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Insert, Table, bindparam, func, insert, literal, select
from sqlalchemy.orm import Session

from baton.db.models import OrchestrationEvent, OrchestrationRun, utcnow


def _append_for_run() -> Insert:
    """The INSERT of ``append_for_run``, built once: an agent step appends two events, and
    building the statement each time cost more than running it."""
    table = cast(Table, OrchestrationEvent.__table__)
    run_id = bindparam("run_id", type_=table.c.run_id.type)
    organization = (
        select(OrchestrationRun.organization).where(OrchestrationRun.id == run_id).scalar_subquery()
    )
    return insert(table).values(
        run_id=run_id,
        organization=func.coalesce(organization, literal("global")),
        type=bindparam("type"),
        payload=bindparam("payload", type_=table.c.payload.type),
        created_at=bindparam("created_at", type_=table.c.created_at.type),
    )


_APPEND_FOR_RUN = _append_for_run()


class EventsRepository:
    """Append events and read them in sequence order."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def append(
        self,
        *,
        organization: str,
        type: str,
        run_id: uuid.UUID | None,
        payload: dict[str, Any] | None = None,
    ) -> OrchestrationEvent:
        event = OrchestrationEvent(
            organization=organization, type=type, run_id=run_id, payload=payload or {}
        )
        self.session.add(event)
        self.session.flush()
        return event

    def append_for_run(self, *, type: str, run_id: uuid.UUID, payload: dict[str, Any]) -> None:
        """Append an event of ``run_id`` under the run's organization ("global" when the run
        is not stored), in one statement: the organization is read inside the INSERT."""
        self.session.execute(
            _APPEND_FOR_RUN,
            {"run_id": run_id, "type": type, "payload": payload, "created_at": utcnow()},
        )

    def list(
        self, *, run_id: uuid.UUID | None = None, after: int = 0, limit: int = 500
    ) -> Sequence[OrchestrationEvent]:
        query = select(OrchestrationEvent).where(OrchestrationEvent.sequence > after)
        if run_id is not None:
            query = query.where(OrchestrationEvent.run_id == run_id)
        return self.session.scalars(query.order_by(OrchestrationEvent.sequence).limit(limit)).all()
