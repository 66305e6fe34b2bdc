"""Orchestration runs: creation, guarded status changes, lineage queries, soft delete."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from baton.db.models import OrchestrationDefinition, OrchestrationRun, utcnow
from baton.state import RUN_TRANSITIONS, TERMINAL_RUN_STATUSES, IllegalTransition, sources_of


class RunsRepository:
    """Runs of one database; every status change goes through ``transition``."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def create(
        self,
        definition: OrchestrationDefinition,
        *,
        inputs: dict[str, Any],
        run_id: uuid.UUID | None = None,
        created_by: str | None = None,
        parent: OrchestrationRun | None = None,
        parent_step_id: str | None = None,
    ) -> OrchestrationRun:
        """A new pending run of ``definition``; a child links to its parent and root."""
        run = OrchestrationRun(
            id=run_id or uuid.uuid4(),
            definition_id=definition.id,
            organization=definition.organization,
            orchestration=definition.slug,
            version=definition.version,
            status="pending",
            inputs=inputs,
            created_by=created_by,
            parent_run_id=parent.id if parent else None,
            root_run_id=(parent.root_run_id or parent.id) if parent else None,
            parent_step_id=parent_step_id,
        )
        self.session.add(run)
        self.session.flush()
        return run

    def get(self, run_id: uuid.UUID, *, include_deleted: bool = False) -> OrchestrationRun | None:
        run = self.session.get(OrchestrationRun, run_id, populate_existing=True)
        if run is None or (run.deleted_at is not None and not include_deleted):
            return None
        return run

    def transition(self, run_id: uuid.UUID, target: str, **fields: Any) -> OrchestrationRun:
        """Move a run to ``target`` if the state machine allows it from its current status.

        Raises:
            IllegalTransition: not allowed from the current status (or the run is missing).
        """
        allowed = sources_of(RUN_TRANSITIONS, target)
        now = utcnow()
        values: dict[str, Any] = {"status": target, "updated_at": now, **fields}
        if target == "running":
            # A resumed run keeps the time it first started.
            values.setdefault("started_at", func.coalesce(OrchestrationRun.started_at, now))
            values.setdefault("finished_at", None)  # a retried failed run is not finished
        if target in TERMINAL_RUN_STATUSES:
            values.setdefault("finished_at", now)
        result = self.session.execute(
            update(OrchestrationRun)
            .where(OrchestrationRun.id == run_id, OrchestrationRun.status.in_(allowed))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            current = self.session.scalar(
                select(OrchestrationRun.status).where(OrchestrationRun.id == run_id)
            )
            raise IllegalTransition("run", str(run_id), current, target)
        run = self.get(run_id, include_deleted=True)
        assert run is not None
        return run

    def lock(self, run_id: uuid.UUID) -> None:
        """Take the run's row lock (Postgres; SQLite serializes writers anyway).

        Whatever changes a run together with its approvals locks the run first, so an abort
        and a claim on the same run wait for each other instead of deadlocking. ``FOR NO KEY
        UPDATE`` (the lock an UPDATE of the row takes anyway) leaves inserts of rows that refer
        to the run (events, votes) free.
        """
        self.session.execute(
            select(OrchestrationRun.id)
            .where(OrchestrationRun.id == run_id)
            .with_for_update(key_share=True)
        )

    def segment_of(self, run_id: uuid.UUID) -> str | None:
        """The run's active segment id (None before any segment claimed it)."""
        return self.session.scalar(
            select(OrchestrationRun.segment_id).where(OrchestrationRun.id == run_id)
        )

    def swap_segment(self, run_id: uuid.UUID, expected: str | None, new: str) -> bool:
        """Compare-and-set the active segment: ``expected`` -> ``new``; False if it moved."""
        current = OrchestrationRun.segment_id
        guard = current.is_(None) if expected is None else current == expected
        result = self.session.execute(
            update(OrchestrationRun)
            .where(OrchestrationRun.id == run_id, guard)
            .values(segment_id=new, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def force_segment(self, run_id: uuid.UUID, new: str | None) -> None:
        """Make ``new`` the active segment whatever was (the caller holds the guard that makes
        it the only launcher: a won approval claim, a won status change)."""
        self.session.execute(
            update(OrchestrationRun)
            .where(OrchestrationRun.id == run_id)
            .values(segment_id=new, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )

    def clear_launch_claim(self, run_id: uuid.UUID) -> None:
        """The claimed segment started: nothing is left for the children sensor to launch."""
        self.session.execute(
            update(OrchestrationRun)
            .where(OrchestrationRun.id == run_id)
            .values(launch_claimed_at=None, launch_claimed_by=None, launch_error=None)
            .execution_options(synchronize_session=False)
        )

    def set_dagster_run(self, run_id: uuid.UUID, dagster_run_id: str) -> None:
        self.session.execute(
            update(OrchestrationRun)
            .where(OrchestrationRun.id == run_id)
            .values(last_dagster_run_id=dagster_run_id, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )

    def list(
        self,
        *,
        organization: str | None = None,
        status: str | None = None,
        orchestration: str | None = None,
        parent_run_id: uuid.UUID | None = None,
        root_run_id: uuid.UUID | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Sequence[OrchestrationRun]:
        """Runs newest first, without soft-deleted ones."""
        query = select(OrchestrationRun).where(OrchestrationRun.deleted_at.is_(None))
        if organization is not None:
            query = query.where(OrchestrationRun.organization == organization)
        if status is not None:
            query = query.where(OrchestrationRun.status == status)
        if orchestration is not None:
            query = query.where(OrchestrationRun.orchestration == orchestration)
        if parent_run_id is not None:
            query = query.where(OrchestrationRun.parent_run_id == parent_run_id)
        if root_run_id is not None:  # the root and every run below it
            query = query.where(
                or_(OrchestrationRun.id == root_run_id, OrchestrationRun.root_run_id == root_run_id)
            )
        query = query.order_by(OrchestrationRun.created_at.desc(), OrchestrationRun.id)
        return self.session.scalars(query.limit(limit).offset(offset)).all()

    def children(self, run_id: uuid.UUID) -> Sequence[OrchestrationRun]:
        """Direct children, oldest first."""
        return self.session.scalars(
            select(OrchestrationRun)
            .where(OrchestrationRun.parent_run_id == run_id, OrchestrationRun.deleted_at.is_(None))
            .order_by(OrchestrationRun.created_at)
        ).all()

    def descendants(self, root_run_id: uuid.UUID) -> Sequence[OrchestrationRun]:
        """Every run below a root, oldest first."""
        return self.session.scalars(
            select(OrchestrationRun)
            .where(
                OrchestrationRun.root_run_id == root_run_id, OrchestrationRun.deleted_at.is_(None)
            )
            .order_by(OrchestrationRun.created_at)
        ).all()

    def soft_delete(self, run_id: uuid.UUID) -> None:
        """Hide a run and its descendants from listings; rows stay for the audit."""
        # Follow parent links level by level: below a non-root run, root_run_id points past
        # it, so grandchildren and deeper are found only through their parents.
        ids = {run_id}
        level = [run_id]
        while level:
            level = [
                child
                for child in self.session.scalars(
                    select(OrchestrationRun.id).where(OrchestrationRun.parent_run_id.in_(level))
                )
                if child not in ids
            ]
            ids.update(level)
        self.session.execute(
            update(OrchestrationRun)
            .where(OrchestrationRun.id.in_(ids))
            .values(deleted_at=utcnow())
            .execution_options(synchronize_session=False)
        )
