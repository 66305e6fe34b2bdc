"""The audit log of operator actions (retry, skip, abort, compensate): who, when, what, why,
and how it went.

Rows are only inserted. An accepted action's row is written in the transaction of the change
it records, so the log and the state never disagree; a refusal is written in its own.
Callers pass ``details`` and ``reason`` already masked (``RunStore.mask``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from baton.db.models import OperatorAction


@dataclass(frozen=True)
class ActionRecord:
    """What one audit row says (the caller's side of it)."""

    organization: str
    run_id: uuid.UUID
    step_id: str | None
    action: str
    by: str
    via: str
    reason: str | None
    details: dict[str, Any]
    run_status: str | None
    step_status: str | None


class AuditRepository:
    """Operator actions of runs, oldest first."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def record(
        self,
        entry: ActionRecord,
        *,
        outcome: str,
        message: str | None,
        id: uuid.UUID | None = None,
    ) -> OperatorAction:
        """Insert one row (``outcome`` accepted or refused) and return it with its id
        (``id``: one the caller already gave the change it records)."""
        row = OperatorAction(
            id=id or uuid.uuid4(),
            organization=entry.organization,
            run_id=entry.run_id,
            step_id=entry.step_id,
            action=entry.action,
            by=entry.by,
            via=entry.via,
            reason=entry.reason,
            details=entry.details,
            run_status=entry.run_status,
            step_status=entry.step_status,
            outcome=outcome,
            message=message,
        )
        self.session.add(row)
        self.session.flush()
        return row

    def list(self, run_id: uuid.UUID) -> Sequence[OperatorAction]:
        return self.session.scalars(
            select(OperatorAction)
            .where(OperatorAction.run_id == run_id)
            .order_by(OperatorAction.created_at, OperatorAction.id)
        ).all()
