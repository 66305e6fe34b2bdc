"""Approvals and their votes. Status changes are guarded updates (see baton.state)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from baton.db.models import ApprovalVote, HumanApproval, utcnow
from baton.state import APPROVAL_TRANSITIONS, IllegalTransition, sources_of


class ApprovalsRepository:
    """Approval rows and votes."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, **fields: Any) -> HumanApproval:
        row = HumanApproval(**fields)
        self.session.add(row)
        self.session.flush()
        return row

    def get(self, approval_id: uuid.UUID) -> HumanApproval | None:
        return self.session.get(HumanApproval, approval_id, populate_existing=True)

    def latest_for_step(self, run_id: uuid.UUID, step_id: str) -> HumanApproval | None:
        return self.session.scalar(
            select(HumanApproval)
            .where(HumanApproval.run_id == run_id, HumanApproval.step_id == step_id)
            .order_by(HumanApproval.requested_at.desc())
            .limit(1)
        )

    def list(
        self,
        *,
        status: str | None = None,
        run_id: uuid.UUID | None = None,
        organization: str | None = None,
        limit: int = 100,
    ) -> Sequence[HumanApproval]:
        query = select(HumanApproval)
        if status is not None:
            query = query.where(HumanApproval.status == status)
        if run_id is not None:
            query = query.where(HumanApproval.run_id == run_id)
        if organization is not None:
            query = query.where(HumanApproval.organization == organization)
        return self.session.scalars(query.order_by(HumanApproval.requested_at).limit(limit)).all()

    def with_status(self, statuses: Sequence[str], limit: int = 100) -> Sequence[HumanApproval]:
        return self.session.scalars(
            select(HumanApproval)
            .where(HumanApproval.status.in_(statuses))
            .order_by(HumanApproval.decided_at, HumanApproval.requested_at)
            .limit(limit)
        ).all()

    def due(self, now: datetime, limit: int = 100) -> Sequence[HumanApproval]:
        """Pending approvals whose deadline has passed."""
        return self.session.scalars(
            select(HumanApproval)
            .where(HumanApproval.status == "pending", HumanApproval.expires_at <= now)
            .order_by(HumanApproval.expires_at)
            .limit(limit)
        ).all()

    def transition(self, approval_id: uuid.UUID, target: str, **fields: Any) -> HumanApproval:
        """Move an approval to ``target`` if allowed from its current status.

        Raises:
            IllegalTransition: not allowed now (another caller won, or it was never allowed).
        """
        result = self.session.execute(
            update(HumanApproval)
            .where(
                HumanApproval.id == approval_id,
                HumanApproval.status.in_(sources_of(APPROVAL_TRANSITIONS, target)),
            )
            .values(status=target, **fields)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            current = self.session.scalar(
                select(HumanApproval.status).where(HumanApproval.id == approval_id)
            )
            raise IllegalTransition("approval", str(approval_id), current, target)
        row = self.get(approval_id)
        assert row is not None
        return row

    def update_pending(self, approval_id: uuid.UUID, **fields: Any) -> bool:
        """Change a still-pending approval (escalation); False if it is no longer pending."""
        result = self.session.execute(
            update(HumanApproval)
            .where(HumanApproval.id == approval_id, HumanApproval.status == "pending")
            .values(**fields)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def lock_pending(self, approval_id: uuid.UUID) -> bool:
        """Take the approval's row lock before reading its votes (False if not pending).

        A write first makes concurrent decisions on one approval wait for each other, on
        Postgres (row lock) and SQLite (the write lock) alike, so the second one counts the
        first one's vote instead of deciding from a stale read.
        """
        result = self.session.execute(
            update(HumanApproval)
            .where(HumanApproval.id == approval_id, HumanApproval.status == "pending")
            .values(status=HumanApproval.status)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def take_over(self, approval: HumanApproval, *, by: str, lease_seconds: float) -> bool:
        """Claim a resuming approval again if its claim was released or its lease passed;
        guarded on the ``claimed_at`` read, so one of two racing callers wins."""
        now = utcnow()
        claimed_at = approval.claimed_at
        if claimed_at is not None:
            if claimed_at.tzinfo is None:  # SQLite returns naive datetimes
                claimed_at = claimed_at.replace(tzinfo=now.tzinfo)
            if now - claimed_at < timedelta(seconds=lease_seconds):
                return False
        guard = (
            HumanApproval.claimed_at.is_(None)
            if approval.claimed_at is None
            else HumanApproval.claimed_at == approval.claimed_at
        )
        result = self.session.execute(
            update(HumanApproval)
            .where(HumanApproval.id == approval.id, HumanApproval.status == "resuming", guard)
            .values(
                claimed_at=now,
                claimed_by=by,
                launch_attempts=HumanApproval.launch_attempts + 1,
            )
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def set_launch(
        self, approval_id: uuid.UUID, *, error: str | None, release: bool = False
    ) -> None:
        """Record (or clear) why the claimed segment has not started; maybe release the claim."""
        values: dict[str, Any] = {"launch_error": error}
        if release:
            values["claimed_at"] = None
        self.session.execute(
            update(HumanApproval)
            .where(HumanApproval.id == approval_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )

    def add_vote(self, **fields: Any) -> ApprovalVote:
        vote = ApprovalVote(created_at=utcnow(), **fields)
        self.session.add(vote)
        self.session.flush()
        return vote

    def votes(self, approval_id: uuid.UUID) -> Sequence[ApprovalVote]:
        return self.session.scalars(
            select(ApprovalVote)
            .where(ApprovalVote.approval_id == approval_id)
            .order_by(ApprovalVote.created_at, ApprovalVote.id)
        ).all()
