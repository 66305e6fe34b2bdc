"""Steps of a run: ordering, attempts, inputs and outputs (the memo later segments reuse)."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, exists, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from baton.db.models import OrchestrationRun, OrchestrationStep, utcnow
from baton.state import DONE_STEP_STATUSES, STEP_TRANSITIONS, IllegalTransition, sources_of


class StepsRepository:
    """Step rows, one per (run, step id)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def ensure(
        self, run_id: uuid.UUID, step_id: str, *, position: int, kind: str, agent: str | None
    ) -> OrchestrationStep:
        """The step's row, created pending if this run has none yet."""
        row = self.get(run_id, step_id)
        if row is not None:
            return row
        row = OrchestrationStep(
            run_id=run_id,
            step_id=step_id,
            position=position,
            kind=kind,
            agent=agent,
            status="pending",
            attempt=0,
        )
        try:
            with self.session.begin_nested():
                self.session.add(row)
                self.session.flush()
        except IntegrityError:  # created concurrently by another segment
            existing = self.get(run_id, step_id)
            assert existing is not None
            return existing
        return row

    def ensure_all(self, run_id: uuid.UUID, plans: Sequence[tuple[str, str, str | None]]) -> None:
        """A pending row for each ``(step_id, kind, agent)`` this run has none of yet, at its
        position in ``plans``: one SELECT and one INSERT however many steps there are; a row
        another segment creates meanwhile is left as it is."""
        have = set(
            self.session.scalars(
                select(OrchestrationStep.step_id).where(OrchestrationStep.run_id == run_id)
            )
        )
        missing = [
            {
                "run_id": run_id,
                "step_id": step_id,
                "position": position,
                "kind": kind,
                "agent": agent,
                "status": "pending",
                "attempt": 0,
            }
            for position, (step_id, kind, agent) in enumerate(plans)
            if step_id not in have
        ]
        if not missing:
            return
        dialect = self.session.get_bind().dialect.name
        insert_ = postgresql.insert if dialect == "postgresql" else sqlite.insert
        self.session.execute(
            insert_(OrchestrationStep)
            .values(missing)
            .on_conflict_do_nothing(index_elements=["run_id", "step_id"])
        )

    def get(self, run_id: uuid.UUID, step_id: str) -> OrchestrationStep | None:
        return self.session.scalar(
            select(OrchestrationStep)
            .where(OrchestrationStep.run_id == run_id, OrchestrationStep.step_id == step_id)
            .execution_options(populate_existing=True)
        )

    def list(self, run_id: uuid.UUID) -> Sequence[OrchestrationStep]:
        """The run's steps in definition order."""
        return self.session.scalars(
            select(OrchestrationStep)
            .where(OrchestrationStep.run_id == run_id)
            .order_by(OrchestrationStep.position, OrchestrationStep.id)
        ).all()

    def outputs(self, run_id: uuid.UUID) -> dict[str, Any]:
        """Outputs of the run's completed steps by step id."""
        rows = self.session.execute(
            select(OrchestrationStep.step_id, OrchestrationStep.output).where(
                OrchestrationStep.run_id == run_id, OrchestrationStep.status == "completed"
            )
        ).all()
        return {step_id: output for step_id, output in rows}

    def transition(
        self,
        run_id: uuid.UUID,
        step_id: str,
        target: str,
        *,
        of_attempt: int | None = None,
        also: Sequence[ColumnElement[bool]] = (),
        **fields: Any,
    ) -> OrchestrationStep:
        """Move a step to ``target`` if allowed from its current status (and, with
        ``of_attempt``, only while that attempt is still the step's latest; with ``also``,
        only while those conditions hold).

        Raises:
            IllegalTransition: not allowed from the current status, or a newer attempt started.
        """
        now = utcnow()
        # Any move of the step supersedes a policy retry the reaper had scheduled for it.
        values: dict[str, Any] = {"status": target, "updated_at": now, "retry_at": None, **fields}
        if target in DONE_STEP_STATUSES or target == "failed":
            values.setdefault("finished_at", now)
        statement = (
            update(OrchestrationStep)
            .where(
                OrchestrationStep.run_id == run_id,
                OrchestrationStep.step_id == step_id,
                OrchestrationStep.status.in_(sources_of(STEP_TRANSITIONS, target)),
                *([] if of_attempt is None else [OrchestrationStep.attempt == of_attempt]),
                *also,
            )
            .values(**values)
        )
        row: OrchestrationStep | None
        if self.session.get_bind().dialect.update_returning:
            # RETURNING hands back the updated row: one statement, not an UPDATE and a SELECT.
            row = self.session.scalar(
                statement.returning(OrchestrationStep).execution_options(
                    synchronize_session=False, populate_existing=True
                )
            )
        else:  # SQLite before 3.35 has no RETURNING (SQLAlchemy would write it anyway)
            result = self.session.execute(statement.execution_options(synchronize_session=False))
            moved = result.rowcount == 1  # type: ignore[attr-defined]
            row = self.get(run_id, step_id) if moved else None
        if row is None:
            current = self.get(run_id, step_id)
            raise IllegalTransition(
                "step", f"{run_id}/{step_id}", current.status if current else None, target
            )
        return row

    def start_attempt(
        self,
        run_id: uuid.UUID,
        step_id: str,
        *,
        input: Any,
        dagster_run_id: str | None,
        retry: bool = False,
        segment: str | None = None,
    ) -> OrchestrationStep:
        """Mark the step running and count one more attempt (with ``segment``, only while the
        run has not ended and that segment, or none, is its active one: checked in the same
        UPDATE, so starting a step is one statement).

        The logical call's number (the idempotency key's counter) moves on only for a new call:
        the step's first start, a start after an operator's or a checkpoint's retry (the step
        is pending again) or ``retry`` (the step's retry policy). A re-execution of an
        interrupted or failed attempt presents the same call again.
        """
        # Both increments happen in SQL, so two workers starting the same step cannot both
        # record the same attempt number.
        return self.transition(
            run_id,
            step_id,
            "running",
            attempt=OrchestrationStep.attempt + 1,
            call_number=_next_call(retry),
            input=input,
            error=None,
            dagster_run_id=dagster_run_id,
            started_at=utcnow(),
            heartbeat_at=utcnow(),  # the lease starts with the attempt, in its transaction
            finished_at=None,
            also=() if segment is None else (_segment_is(run_id, segment),),
        )

    def set_input(self, run_id: uuid.UUID, step_id: str, input: Any) -> None:
        """Record the input a started attempt calls with (when it is not the rendered one)."""
        self.session.execute(
            update(OrchestrationStep)
            .where(OrchestrationStep.run_id == run_id, OrchestrationStep.step_id == step_id)
            .values(input=input)
            .execution_options(synchronize_session=False)
        )

    def heartbeat(self, run_id: uuid.UUID, step_id: str, *, attempt: int, owner: str) -> bool:
        """Renew the lease of a running attempt (one UPDATE); False once it is not ours."""
        result = self.session.execute(
            update(OrchestrationStep)
            .where(*self._lease(run_id, step_id, attempt, owner))
            .values(heartbeat_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def running(self) -> Sequence[OrchestrationStep]:
        """Every running step of every run (the reaper's candidates)."""
        return self.session.scalars(
            select(OrchestrationStep)
            .where(OrchestrationStep.status == "running")
            .order_by(OrchestrationStep.id)
        ).all()

    def fail_orphan(
        self,
        run_id: uuid.UUID,
        step_id: str,
        *,
        attempt: int,
        owner: str,
        error: dict[str, Any],
        retry_at: datetime | None = None,
    ) -> bool:
        """Fail the attempt if it is still this owner's running attempt (a CAS on step,
        attempt and owner): a live retry that started meanwhile is never touched. ``retry_at``:
        when the reaper retries it under the step's policy (None: it does not)."""
        now = utcnow()
        result = self.session.execute(
            update(OrchestrationStep)
            .where(*self._lease(run_id, step_id, attempt, owner))
            .values(
                status="failed", error=error, finished_at=now, updated_at=now, retry_at=retry_at
            )
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def due_retries(
        self, now: datetime, *, limit: int = 100
    ) -> builtins.list[tuple[uuid.UUID, str]]:
        """Failed steps of failed runs whose policy retry is due at ``now``, oldest first:
        (run, step). A range of the ``retry_at`` index (the column is cleared once a retry is
        taken), so the tick's cost follows the retries due, not the history."""
        rows = self.session.execute(
            select(OrchestrationStep.run_id, OrchestrationStep.step_id)
            .join(OrchestrationRun, OrchestrationRun.id == OrchestrationStep.run_id)
            .where(
                OrchestrationStep.retry_at <= now,
                OrchestrationStep.status == "failed",
                OrchestrationRun.status == "failed",
            )
            .order_by(OrchestrationStep.retry_at, OrchestrationStep.id)
            .limit(limit)
        ).all()
        return [(run_id, step_id) for run_id, step_id in rows]

    def take_retry(self, run_id: uuid.UUID, step_id: str) -> bool:
        """Clear the step's scheduled policy retry (it is taken now, or overtaken by an
        operator's); False when there was none."""
        result = self.session.execute(
            update(OrchestrationStep)
            .where(
                OrchestrationStep.run_id == run_id,
                OrchestrationStep.step_id == step_id,
                OrchestrationStep.retry_at.is_not(None),
            )
            .values(retry_at=None)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    @staticmethod
    def _lease(run_id: uuid.UUID, step_id: str, attempt: int, owner: str) -> builtins.list[Any]:
        return [
            OrchestrationStep.run_id == run_id,
            OrchestrationStep.step_id == step_id,
            OrchestrationStep.status == "running",
            OrchestrationStep.attempt == attempt,
            OrchestrationStep.dagster_run_id == owner,
        ]

    def set_input_override(
        self, run_id: uuid.UUID, step_id: str, value: dict[str, Any] | None
    ) -> None:
        """Changes to merge over the step's rendered input on its next attempt (not a status)."""
        self.session.execute(
            update(OrchestrationStep)
            .where(OrchestrationStep.run_id == run_id, OrchestrationStep.step_id == step_id)
            .values(input_override=value, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )

    def set_input_replacement(
        self, run_id: uuid.UUID, step_id: str, value: dict[str, Any] | None
    ) -> None:
        """An operator's new input: replaces the rendered one from the next attempt on."""
        self.session.execute(
            update(OrchestrationStep)
            .where(OrchestrationStep.run_id == run_id, OrchestrationStep.step_id == step_id)
            .values(input_replacement=value, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )

    def cancel_running(self, run_id: uuid.UUID, *, error: dict[str, Any]) -> builtins.list[str]:
        """Cancel the run's running attempts (its abort); returns their step ids. The
        attempt's own late writes then fail their guard, and its lease renewals stop."""
        now = utcnow()
        ids = builtins.list(
            self.session.scalars(
                select(OrchestrationStep.step_id).where(
                    OrchestrationStep.run_id == run_id, OrchestrationStep.status == "running"
                )
            )
        )
        if ids:
            self.session.execute(
                update(OrchestrationStep)
                .where(OrchestrationStep.run_id == run_id, OrchestrationStep.status == "running")
                .values(status="cancelled", error=error, finished_at=now, updated_at=now)
                .execution_options(synchronize_session=False)
            )
        return ids


def _segment_is(run_id: uuid.UUID, segment: str) -> ColumnElement[bool]:
    """The run has not ended and ``segment`` (or no segment yet) is its active one."""
    return exists(
        select(OrchestrationRun.id).where(
            OrchestrationRun.id == run_id,
            OrchestrationRun.status.not_in(("aborted", "completed")),
            or_(OrchestrationRun.segment_id.is_(None), OrchestrationRun.segment_id == segment),
        )
    )


def _next_call(retry: bool) -> Any:
    """The SQL for the call number a start records (the row's values before the update)."""
    current = OrchestrationStep.call_number
    if retry:
        return current + 1
    # A compensated step runs again only on a deliberate retry of its run: a new call.
    fresh = OrchestrationStep.status.in_(("pending", "compensated")) | (current == 0)
    return case((fresh, current + 1), else_=current)
