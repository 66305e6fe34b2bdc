"""Compensations of a run's completed steps: the rows, and the run's compensation claim.

Every change is a guarded UPDATE (``WHERE status IN allowed``, ``COMPENSATION_TRANSITIONS``),
so of two callers racing for one change (two sensors, a sensor and an abort) one wins.
``baton.compensation`` decides what is compensated and when; this module only stores it.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from baton.db.models import OrchestrationRun, StepCompensation, utcnow
from baton.state import COMPENSATION_TRANSITIONS, IllegalTransition, sources_of

# A row whose call was cut off by its worker's end: a re-run presents the same call again.
INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class Planned:
    """One compensation to run: the step it undoes and the agent that does it."""

    step_id: str
    agent: str


class CompensationsRepository:
    """``step_compensations`` rows and the ``compensation*`` columns of a run."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # the run's compensation --------------------------------------------------------------

    def open(self, run_id: uuid.UUID, planned: Sequence[Planned]) -> bool:
        """Move the run's compensation to pending (unclaimed) with one pending row per
        ``planned`` step, in order (position 1 runs first); False if it is already under
        way (pending, running or failed: a failed one is re-opened by ``reopen_failed``)."""
        if not self._move(run_id, ("completed",), from_none=True):
            return False
        ids = [p.step_id for p in planned]
        self.session.execute(
            delete(StepCompensation).where(
                StepCompensation.run_id == run_id, StepCompensation.step_id.in_(ids)
            )
        )
        for position, item in enumerate(planned, start=1):
            self.session.add(
                StepCompensation(
                    run_id=run_id,
                    step_id=item.step_id,
                    position=position,
                    agent=item.agent,
                    status="pending",
                )
            )
        self.session.flush()
        return True

    def reopen_failed(self, run_id: uuid.UUID) -> list[str]:
        """A failed compensation goes back to pending: its failed rows run again (new calls),
        its completed ones are kept; a row interrupted mid-call goes back to running, so it
        presents the same call (and key) again. Returns the steps still to run."""
        if not self._move(run_id, ("failed",), from_none=False):
            return []
        todo = []
        for row in self.rows(run_id):
            if row.status == "failed":
                interrupted = (row.error or {}).get("kind") == INTERRUPTED
                row.status = "running" if interrupted else "pending"
                row.error = None
            if row.status != "completed":
                todo.append(row.step_id)
        self.session.flush()
        return todo

    def running(self) -> Sequence[OrchestrationRun]:
        """Runs whose compensation job started and has not ended it."""
        run = OrchestrationRun
        return self.session.scalars(select(run).where(run.compensation == "running")).all()

    def interrupt(
        self, run_id: uuid.UUID, *, segment: str, error: str
    ) -> builtins.list[str] | None:
        """The compensation job of ``segment`` ended without ending the compensation (its
        worker died, it was canceled): failed, its running rows failed as interrupted.
        Returns those rows' steps; None if it is no longer that segment's running one."""
        run = OrchestrationRun
        result = self.session.execute(
            update(run)
            .where(
                run.id == run_id,
                run.compensation == "running",
                run.compensation_segment == segment,
            )
            .values(compensation="failed", compensation_error=error, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            return None
        stopped = []
        for row in self.rows(run_id):
            if row.status == "running":
                row.status = "failed"
                row.error = {"message": error, "kind": INTERRUPTED, "final": True}
                row.finished_at = utcnow()
                stopped.append(row.step_id)
        self.session.flush()
        return stopped

    def claim(
        self, run_id: uuid.UUID, *, by: str, segment: str, stale_before: datetime | None
    ) -> bool:
        """Claim a pending compensation for ``segment``: unclaimed, or (``stale_before``)
        claimed before that time and still not started. False if another caller has it."""
        run = OrchestrationRun
        unclaimed = run.compensation_claimed_by.is_(None)
        guard = (
            unclaimed
            if stale_before is None
            else or_(unclaimed, run.compensation_claimed_at < stale_before)
        )
        result = self.session.execute(
            update(run)
            .where(run.id == run_id, run.compensation == "pending", guard)
            .values(
                compensation_segment=segment,
                compensation_claimed_by=by,
                compensation_claimed_at=utcnow(),
                compensation_error=None,
            )
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def release(self, run_id: uuid.UUID, *, segment: str, reason: str) -> bool:
        """A claimed compensation whose launch failed: unclaimed again, with the reason, so
        the compensation sensor launches it at its next tick."""
        run = OrchestrationRun
        result = self.session.execute(
            update(run)
            .where(
                run.id == run_id,
                run.compensation == "pending",
                run.compensation_segment == segment,
            )
            .values(
                compensation_claimed_by=None,
                compensation_claimed_at=None,
                compensation_error=reason,
            )
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def begin(self, run_id: uuid.UUID, segment: str) -> bool:
        """The compensation job of ``segment`` starts: pending -> running, or running again
        for the same segment (an op retry). False if ``segment`` is not the claimed one."""
        run = OrchestrationRun
        result = self.session.execute(
            update(run)
            .where(
                run.id == run_id,
                run.compensation.in_(("pending", "running")),
                run.compensation_segment == segment,
            )
            .values(compensation="running", updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def finish(self, run_id: uuid.UUID, *, segment: str, error: str | None) -> None:
        """running -> completed (``error`` None) or failed (with ``error``)."""
        run = OrchestrationRun
        target = "failed" if error else "completed"
        result = self.session.execute(
            update(run)
            .where(
                run.id == run_id,
                run.compensation.in_(sources_of(COMPENSATION_TRANSITIONS, target)),
                run.compensation_segment == segment,
            )
            .values(compensation=target, compensation_error=error, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            current = self.session.scalar(select(run.compensation).where(run.id == run_id))
            raise IllegalTransition("compensation", str(run_id), current, target)

    def due(self, *, stale_before: datetime) -> Sequence[OrchestrationRun]:
        """Pending compensations no process is launching: unclaimed, or claimed before
        ``stale_before`` and not started (the claimer died or hangs)."""
        run = OrchestrationRun
        return self.session.scalars(
            select(run)
            .where(
                run.compensation == "pending",
                or_(
                    run.compensation_claimed_by.is_(None),
                    run.compensation_claimed_at < stale_before,
                ),
            )
            .order_by(run.finished_at)
        ).all()

    def _move(self, run_id: uuid.UUID, sources: tuple[str, ...], *, from_none: bool) -> bool:
        """To pending, unclaimed, from ``sources`` (or NULL: nothing compensated yet)."""
        run = OrchestrationRun
        allowed = [s for s in sources if "pending" in COMPENSATION_TRANSITIONS[s]]
        guard: ColumnElement[bool] = run.compensation.in_(allowed)
        if from_none:
            guard = or_(guard, run.compensation.is_(None))
        result = self.session.execute(
            update(run)
            .where(run.id == run_id, guard)
            .values(
                compensation="pending",
                compensation_segment=None,
                compensation_claimed_by=None,
                compensation_claimed_at=None,
                compensation_error=None,
                updated_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    # the rows -----------------------------------------------------------------------------

    def rows(self, run_id: uuid.UUID) -> builtins.list[StepCompensation]:
        """The run's compensations in the order they run."""
        return list(
            self.session.scalars(
                select(StepCompensation)
                .where(StepCompensation.run_id == run_id)
                .order_by(StepCompensation.position)
            ).all()
        )

    def start_row(
        self, run_id: uuid.UUID, step_id: str, *, input: Any, dagster_run_id: str, new_call: bool
    ) -> StepCompensation:
        """An attempt starts: running, attempt + 1, a new call unless it re-presents an
        interrupted one (``new_call`` False keeps the key)."""
        row = self._row(run_id, step_id)
        if row.status not in ("pending", "running", "failed"):
            raise IllegalTransition("compensation", f"{run_id}/{step_id}", row.status, "running")
        row.status = "running"
        row.attempt += 1
        if new_call or row.call_number == 0:
            row.call_number += 1
        row.input = input
        row.error = None
        row.dagster_run_id = dagster_run_id
        row.started_at = utcnow()
        self.session.flush()
        return row

    def end_row(
        self,
        run_id: uuid.UUID,
        step_id: str,
        *,
        status: str,
        output: Any = None,
        error: dict[str, Any] | None = None,
    ) -> StepCompensation:
        """running -> completed (with its output) or failed (with its error)."""
        row = self._row(run_id, step_id)
        if row.status != "running" or status not in ("completed", "failed"):
            raise IllegalTransition("compensation", f"{run_id}/{step_id}", row.status, status)
        row.status = status
        row.output = output
        row.error = error
        row.finished_at = utcnow()
        self.session.flush()
        return row

    def _row(self, run_id: uuid.UUID, step_id: str) -> StepCompensation:
        row = self.session.scalar(
            select(StepCompensation)
            .where(StepCompensation.run_id == run_id, StepCompensation.step_id == step_id)
            .with_for_update()
        )
        if row is None:
            raise IllegalTransition("compensation", f"{run_id}/{step_id}", None, "running")
        return row
