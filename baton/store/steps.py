"""Steps of a run: ordering, attempts, inputs and outputs (the memo later segments reuse)."""

from __future__ import annotations

import builtins
import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Table,
    Update,
    bindparam,
    case,
    exists,
    or_,
    select,
    update,
)
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
        statement = _move(run_id, step_id, target, of_attempt, also, fields)
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
            raise self._refused(run_id, step_id, target)
        return row

    def _refused(self, run_id: uuid.UUID, step_id: str, target: str) -> IllegalTransition:
        current = self.get(run_id, step_id)
        return IllegalTransition(
            "step", f"{run_id}/{step_id}", current.status if current else None, target
        )

    def start_attempt(
        self,
        run_id: uuid.UUID,
        step_id: str,
        *,
        input: Any,
        dagster_run_id: str | None,
        retry: bool = False,
    ) -> OrchestrationStep:
        """Mark the step running and count one more attempt.

        The logical call's number (the idempotency key's counter) moves on only for a new call:
        the step's first start, a start after an operator's or a checkpoint's retry (the step
        is pending again) or ``retry`` (the step's retry policy). A re-execution of an
        interrupted or failed attempt presents the same call again.
        """
        fields = _start_fields(input, dagster_run_id, retry)
        return self.transition(run_id, step_id, "running", **fields)

    def begin_attempt(
        self,
        run_id: uuid.UUID,
        step_id: str,
        *,
        input: Any,
        dagster_run_id: str,
        retry: bool,
        segment: str | None,
    ) -> Moved:
        """``start_attempt`` for an agent step (the hot path: a prebuilt statement returning
        plain columns, not the ORM row, which costs about 1 ms a move); with ``segment``, only
        while the run has not ended and that segment, or none, is its active one: checked in
        the same UPDATE, so starting a step is one statement."""
        if not self.session.get_bind().dialect.update_returning:  # SQLite before 3.35
            also = () if segment is None else (segment_is(run_id, segment),)
            fields = _start_fields(input, dagster_run_id, retry)
            return Moved.of(self.transition(run_id, step_id, "running", also=also, **fields))
        params = {
            "b_run_id": run_id,
            "b_step_id": step_id,
            "b_input": input,
            "b_dagster_run_id": dagster_run_id,
            "b_now": utcnow(),
            "b_segment": segment,
        }
        found = self.session.execute(_begin_statement(retry, segment is not None), params)
        return self._moved(found.one_or_none(), run_id, step_id, "running")

    def complete_attempt(
        self, run_id: uuid.UUID, step_id: str, *, output: Any, of_attempt: int | None
    ) -> Moved:
        """Move a running step to completed with its ``output`` (the hot path, as
        ``begin_attempt``); with
        ``of_attempt``, only while that attempt is still the step's latest.

        Raises:
            IllegalTransition: as ``transition``.
        """
        if not self.session.get_bind().dialect.update_returning:  # SQLite before 3.35
            row = self.transition(
                run_id, step_id, "completed", of_attempt=of_attempt, output=output
            )
            return Moved.of(row)
        params = {
            "b_run_id": run_id,
            "b_step_id": step_id,
            "b_output": output,
            "b_now": utcnow(),
            "b_of_attempt": of_attempt,
        }
        found = self.session.execute(_complete_statement(of_attempt is not None), params)
        return self._moved(found.one_or_none(), run_id, step_id, "completed")

    def _moved(self, found: Any, run_id: uuid.UUID, step_id: str, target: str) -> Moved:
        if found is None:
            raise self._refused(run_id, step_id, target)
        return Moved(*found)

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


@dataclass(frozen=True)
class Moved:
    """What an agent step's start and end hand back: the step's attempt and logical call after
    the move, and an operator's replacement input and an approver's changes, if any."""

    attempt: int
    call_number: int
    input_replacement: Any
    input_override: dict[str, Any] | None

    @classmethod
    def of(cls, row: OrchestrationStep) -> Moved:
        return cls(row.attempt, row.call_number, row.input_replacement, row.input_override)


_MOVED = (
    OrchestrationStep.attempt,
    OrchestrationStep.call_number,
    OrchestrationStep.input_replacement,
    OrchestrationStep.input_override,
)


def _move(
    run_id: uuid.UUID,
    step_id: str,
    target: str,
    of_attempt: int | None,
    also: Sequence[ColumnElement[bool]],
    fields: dict[str, Any],
) -> Update:
    """The UPDATE that moves a step to ``target`` when the state machine allows it from its
    status (and ``of_attempt`` is its latest, and ``also`` holds)."""
    now = utcnow()
    # Any move of the step supersedes a policy retry the reaper had scheduled for it.
    values: dict[str, Any] = {"status": target, "updated_at": now, "retry_at": None, **fields}
    if target in DONE_STEP_STATUSES or target == "failed":
        values.setdefault("finished_at", now)
    return (
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


# The two moves of every agent step, built once each (with bind parameters): building an
# UPDATE costs about as much as running it. The same rules as ``_move`` and ``_start_fields``.
_STEPS = cast(Table, OrchestrationStep.__table__)
_RUN_ID = bindparam("b_run_id", type_=_STEPS.c.run_id.type)
_NOW = bindparam("b_now", type_=_STEPS.c.updated_at.type)


def _where(target: str) -> list[ColumnElement[bool]]:
    return [
        _STEPS.c.run_id == _RUN_ID,
        _STEPS.c.step_id == bindparam("b_step_id"),
        _STEPS.c.status.in_(sources_of(STEP_TRANSITIONS, target)),
    ]


@functools.cache
def _begin_statement(retry: bool, segment: bool) -> Update:
    where = _where("running")
    if segment:
        runs = OrchestrationRun
        where.append(
            exists(
                select(runs.id).where(
                    runs.id == _RUN_ID,
                    runs.status.not_in(("aborted", "completed")),
                    or_(runs.segment_id.is_(None), runs.segment_id == bindparam("b_segment")),
                )
            )
        )
    values = {
        "status": "running",
        "updated_at": _NOW,
        "retry_at": None,
        "attempt": _STEPS.c.attempt + 1,
        "call_number": _next_call(retry),
        "input": bindparam("b_input", type_=_STEPS.c.input.type),
        "error": None,
        "dagster_run_id": bindparam("b_dagster_run_id"),
        "started_at": _NOW,
        "heartbeat_at": _NOW,
        "finished_at": None,
    }
    return update(_STEPS).where(*where).values(**values).returning(*_MOVED)


@functools.cache
def _complete_statement(of_attempt: bool) -> Update:
    where = _where("completed")
    if of_attempt:
        where.append(_STEPS.c.attempt == bindparam("b_of_attempt"))
    values = {
        "status": "completed",
        "updated_at": _NOW,
        "retry_at": None,
        "finished_at": _NOW,
        "output": bindparam("b_output", type_=_STEPS.c.output.type),
    }
    return update(_STEPS).where(*where).values(**values).returning(*_MOVED)


def _start_fields(input: Any, dagster_run_id: str | None, retry: bool) -> dict[str, Any]:
    """What a start writes. Both increments happen in SQL, so two workers starting the same
    step cannot both record the same attempt number."""
    now = utcnow()
    return {
        "attempt": OrchestrationStep.attempt + 1,
        "call_number": _next_call(retry),
        "input": input,
        "error": None,
        "dagster_run_id": dagster_run_id,
        "started_at": now,
        "heartbeat_at": now,  # the lease starts with the attempt, in its transaction
        "finished_at": None,
    }


def segment_is(run_id: uuid.UUID, segment: str) -> ColumnElement[bool]:
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
