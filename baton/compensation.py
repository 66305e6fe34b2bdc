"""Compensation: undoing a run's completed steps after it was aborted or failed.

The one owner of the concept (docs/reliability.md, "Compensation"):

- **plan**: in the same transaction that fails or aborts a run, ``plan`` opens its
  compensation when the definition's ``compensate_on`` names that outcome and steps with a
  ``compensate:`` completed: one ``step_compensations`` row per such step, in REVERSE order of
  completion (position 1 undoes the step that completed last). Being inside the run's guarded
  transition, it happens exactly once per failure or abort.
- **claim**: a guarded compare-and-set names the segment that runs it (the compensation job
  ``<job>__compensate``, planned by ``baton.segments``). The process that made the change
  launches it at once when it can (an abort, a manual ``compensate``); a run that failed
  inside a run worker is left unclaimed and the compensation sensor claims it at its next
  tick; a claim not started within ``BATON_SENSORS__CLAIM_LEASE_SECONDS`` is taken over.
- **record**: the compensation job's op starts (``begin``), records each attempt like a step
  (attempt, logical call, input, output), moves the undone step to ``compensated`` and ends
  the run's compensation ``completed`` or ``failed`` (``compensation_error`` names the steps):
  a failing compensation is recorded and reported, and the next one still runs.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from baton import segments
from baton.db.models import OrchestrationDefinition, OrchestrationRun, OrchestrationStep
from baton.state import IllegalTransition
from baton.store.audit import ActionRecord, AuditRepository
from baton.store.compensations import CompensationsRepository, Planned
from baton.store.definitions import DefinitionsRepository
from baton.store.events import EventsRepository
from baton.store.runs import RunsRepository
from baton.store.steps import StepsRepository
from orchestration_defs.language.models import OrchestrationSpec

if TYPE_CHECKING:
    from baton.store.service import RunStore

log = logging.getLogger(__name__)

# The key step id of a compensation's calls: ``<run>:<step>:compensate:<call>``.
KEY_SUFFIX = ":compensate"
COMPENSABLE_RUNS = ("failed", "aborted")
IN_PROGRESS = ("pending", "running")


class NotCompensable(Exception):
    """A compensation that cannot be started now; the message names the state."""


@dataclass(frozen=True)
class Row:
    """One compensation as the job sees it."""

    step_id: str
    status: str
    call_number: int


@dataclass(frozen=True)
class Work:
    """What the compensation job needs: the run, every step's result, the rows in order."""

    run_id: uuid.UUID
    baton: dict[str, Any]
    results: dict[str, dict[str, Any]]
    inputs_of: dict[str, Any]
    rows: list[Row]


@dataclass(frozen=True)
class StartedCompensation:
    attempt: int
    call: int


def key_step(step_id: str) -> str:
    """The step id a compensation's agent request carries (its idempotency key's middle)."""
    return f"{step_id}{KEY_SUFFIX}"


def spec_of(s: Session, run: OrchestrationRun) -> OrchestrationSpec | None:
    raw = s.scalar(
        select(OrchestrationDefinition.spec).where(OrchestrationDefinition.id == run.definition_id)
    )
    if raw is None:
        return None
    try:
        return OrchestrationSpec.model_validate(raw)
    except ValidationError:
        # Stored by an older Baton whose language differed: it has no compensate: either,
        # and a run's failure must never fail on it.
        log.warning("definition of run %s does not validate; nothing to compensate", run.id)
        return None


def compensable(s: Session, run: OrchestrationRun, spec: OrchestrationSpec) -> list[Planned]:
    """The run's completed steps that have a ``compensate:``, last completed first."""
    agents = {step.id: step.compensate.agent for step in spec.compensable_steps if step.compensate}
    done = s.scalars(
        select(OrchestrationStep)
        .where(
            OrchestrationStep.run_id == run.id,
            OrchestrationStep.status == "completed",
            OrchestrationStep.step_id.in_(list(agents)),
        )
        .order_by(OrchestrationStep.finished_at.desc(), OrchestrationStep.position.desc())
    ).all()
    return [Planned(row.step_id, agents[row.step_id]) for row in done]


def plan(s: Session, run: OrchestrationRun, outcome: str, *, forced: bool = False) -> list[str]:
    """Open the compensation of ``run`` that just ended ``outcome`` (aborted or failed), in
    the caller's transaction; the planned steps in the order they run ([] if nothing is to
    be done: ``compensate_on`` leaves the outcome out, nothing compensable completed, or a
    compensation is already under way). ``forced``: an operator's request, whatever
    ``compensate_on`` says."""
    spec = spec_of(s, run)
    if spec is None or not spec.compensable_steps:
        return []
    if not forced and outcome not in spec.compensated_on:
        return []
    planned = compensable(s, run, spec)
    if not planned or not CompensationsRepository(s).open(run.id, planned):
        return []
    steps = [p.step_id for p in planned]
    EventsRepository(s).append(
        organization=run.organization,
        type="run.compensation_planned",
        run_id=run.id,
        payload={"after": outcome, "steps": steps, "forced": forced},
    )
    return steps


def manual_refusal(run: OrchestrationRun) -> str | None:
    """Why an operator cannot start the run's compensation now (None: they can)."""
    if run.status not in COMPENSABLE_RUNS:
        return (
            f"run {run.id} is {run.status}; only a failed or aborted run's completed steps "
            "can be compensated"
        )
    if run.compensation in (*IN_PROGRESS, "completed"):
        return f"run {run.id}: its compensation is {run.compensation} already"
    return None


class Compensations:
    """Compensation operations on one store; each method is one transaction."""

    def __init__(self, store: RunStore) -> None:
        self.store = store

    # starting ------------------------------------------------------------------------------

    def request(
        self, run_id: uuid.UUID, *, by: str, via: str, reason: str | None = None
    ) -> list[str]:
        """An operator's compensation of a failed or aborted run: a failed compensation runs
        its failed rows again, a run never compensated is planned (``compensate_on`` aside).
        Audited like retry, skip and abort: accepted in its transaction, refused in its own.

        Raises:
            NotCompensable: the run's state does not allow it (the message names it).
        """
        try:
            return self._request(run_id, by=by, via=via, reason=reason)
        except NotCompensable as exc:
            with self.store.session() as s:
                run = RunsRepository(s).get(run_id)
                if run is not None:
                    entry = _action(run, by=by, via=via, reason=reason, steps=[])
                    AuditRepository(s).record(entry, outcome="refused", message=str(exc))
            raise

    def _request(self, run_id: uuid.UUID, *, by: str, via: str, reason: str | None) -> list[str]:
        with self.store.session() as s:
            runs = RunsRepository(s)
            runs.lock(run_id)
            run = runs.get(run_id)
            if run is None:
                raise LookupError(f"orchestration run {run_id}")
            refusal = manual_refusal(run)
            if refusal is not None:
                raise NotCompensable(refusal)
            entry = _action(run, by=by, via=via, reason=reason, steps=[])
            if run.compensation == "failed":
                steps = CompensationsRepository(s).reopen_failed(run_id)
            else:
                steps = plan(s, run, run.status, forced=True)
            if not steps:
                raise NotCompensable(
                    f"run {run_id} has no completed step with a 'compensate:' to undo"
                )
            EventsRepository(s).append(
                organization=run.organization,
                type="run.compensation_requested",
                run_id=run_id,
                payload={"by": by, "via": via, "steps": steps},
            )
            entry = replace(entry, details={"steps": steps})
            message = f"compensation of {', '.join(steps)} (in this order) requested"
            AuditRepository(s).record(entry, outcome="accepted", message=message)
            return steps

    def claim(
        self, run_id: uuid.UUID, *, by: str, stale_before: datetime | None = None
    ) -> segments.SegmentPlan | None:
        """Claim a pending compensation and return the segment to launch; None if another
        caller holds it. ``stale_before``: take over a claim made before then (an event
        says whose)."""
        with self.store.session() as s:
            run = RunsRepository(s).get(run_id)
            if run is None or run.compensation != "pending":
                return None
            segment = self._segment(s, run, by)
            previous = run.compensation_claimed_by
            repo = CompensationsRepository(s)
            if not repo.claim(run_id, by=by, segment=segment.segment_id, stale_before=stale_before):
                return None
            if previous is not None:
                EventsRepository(s).append(
                    organization=run.organization,
                    type="run.compensation_taken_over",
                    run_id=run_id,
                    payload={"from": previous, "by": by},
                )
            return segment

    def launched(self, segment: segments.SegmentPlan, *, dagster_run_id: str, by: str) -> None:
        self._event(
            segment.run_id,
            "run.compensation_launched",
            {"dagster_run_id": dagster_run_id, "segment": segment.segment_id, "by": by},
        )

    def release(self, segment: segments.SegmentPlan, *, reason: str) -> None:
        """A launch that failed hands the claim to the compensation sensor, with why."""
        with self.store.session() as s:
            CompensationsRepository(s).release(
                segment.run_id, segment=segment.segment_id, reason=self.store.mask(reason)
            )

    def _segment(self, s: Session, run: OrchestrationRun, by: str) -> segments.SegmentPlan:
        newest = DefinitionsRepository(s).latest(run.organization, run.orchestration)
        job = segments.job_for(run.orchestration, run.version, newest.version if newest else None)
        tags = {
            **segments.lineage_tags(run),
            segments.LAUNCHED_BY_TAG: by,
            segments.COMPENSATION_TAG: "true",
        }
        return segments.plan(
            run.id, job=segments.compensation_job(job), inputs=dict(run.inputs), tags=tags
        )

    # the job's side ----------------------------------------------------------------------

    def begin(self, run_id: uuid.UUID, segment: str) -> Work:
        """The compensation job of ``segment`` starts: what it has to do.

        Raises:
            NotCompensable: ``segment`` is not the claimed one (superseded, or done).
        """
        with self.store.session() as s:
            run = RunsRepository(s).get(run_id, include_deleted=True)
            repo = CompensationsRepository(s)
            if run is None or not repo.begin(run_id, segment):
                state = run.compensation if run is not None else "missing"
                raise NotCompensable(
                    f"run {run_id}: compensation is {state}, not claimed by segment {segment}; "
                    "this Dagster run stops here"
                )
            steps = StepsRepository(s).list(run_id)
            rows = [Row(r.step_id, r.status, r.call_number) for r in repo.rows(run_id)]
            baton = {
                "run_id": str(run.id),
                "orchestration": run.orchestration,
                "version": run.version,
                "organization": run.organization,
                "inputs": dict(run.inputs),
            }
            results = {r.step_id: {"output": r.output, "status": r.status} for r in steps}
            return Work(run_id, baton, results, {r.step_id: r.input for r in steps}, rows)

    def start(
        self, run_id: uuid.UUID, step_id: str, *, input: Any, dagster_run_id: str, new_call: bool
    ) -> StartedCompensation:
        masked = self.store.mask(input)
        with self.store.session() as s:
            row = CompensationsRepository(s).start_row(
                run_id, step_id, input=masked, dagster_run_id=dagster_run_id, new_call=new_call
            )
            started = StartedCompensation(row.attempt, row.call_number)
            self._append(
                s,
                run_id,
                "step.compensation_started",
                {"step_id": step_id, "attempt": row.attempt, "call": row.call_number},
            )
        return started

    def complete(self, run_id: uuid.UUID, step_id: str, *, output: Any) -> None:
        """The compensation succeeded: its output kept, the step ``compensated``."""
        masked = self.store.mask(output)
        with self.store.session() as s:
            row = CompensationsRepository(s).end_row(
                run_id, step_id, status="completed", output=masked
            )
            # A step no longer completed (moved on meanwhile) keeps its status.
            with contextlib.suppress(IllegalTransition):
                StepsRepository(s).transition(run_id, step_id, "compensated")
            self._append(
                s,
                run_id,
                "step.compensation_completed",
                {"step_id": step_id, "attempt": row.attempt, "call": row.call_number},
            )

    def fail(self, run_id: uuid.UUID, step_id: str, *, error: dict[str, Any], final: bool) -> None:
        """An attempt failed; ``final``: its retry policy is spent, the failure is reported
        (``step.compensation_failed``), else the next attempt follows."""
        masked = self.store.mask(error)
        with self.store.session() as s:
            row = CompensationsRepository(s).end_row(
                run_id, step_id, status="failed", error={**masked, "final": final}
            )
            kind = "step.compensation_failed" if final else "step.compensation_attempt_failed"
            payload = {"step_id": step_id, "attempt": row.attempt, "call": row.call_number}
            self._append(s, run_id, kind, {**payload, **masked})

    def finish(self, run_id: uuid.UUID, segment: str, failed: dict[str, str]) -> None:
        """The run's compensation ends: completed, or failed naming each failed step."""
        error = None
        if failed:
            error = "; ".join(f"compensation of step '{k}' failed: {v}" for k, v in failed.items())
            error = self.store.mask(error)
        with self.store.session() as s:
            CompensationsRepository(s).finish(run_id, segment=segment, error=error)
            kind = "run.compensation_failed" if failed else "run.compensation_completed"
            self._append(s, run_id, kind, {"failed": sorted(failed), "error": error})

    def interrupt_ended(self, ended: Callable[[str], str | None]) -> list[uuid.UUID]:
        """Fail the running compensations whose job ended without ending them; ``ended``
        gives the Dagster status a segment's run ended with (None: still going). Their
        interrupted rows keep their call for an operator's re-run (``request``)."""
        with self.store.session() as s:
            running = [(r.id, r.compensation_segment) for r in CompensationsRepository(s).running()]
        failed = []
        for run_id, segment in running:
            status = ended(segment) if segment else None
            if status is None or segment is None:
                continue
            error = f"its Dagster run ended {status} before the compensation finished"
            with self.store.session() as s:
                steps = CompensationsRepository(s).interrupt(run_id, segment=segment, error=error)
                if steps is None:
                    continue
                self._append(
                    s,
                    run_id,
                    "run.compensation_failed",
                    {"interrupted": steps, "error": error, "segment": segment},
                )
            failed.append(run_id)
        return failed

    # reading -----------------------------------------------------------------------------

    def due(self, *, stale_before: datetime) -> list[OrchestrationRun]:
        with self.store.session() as s:
            return list(CompensationsRepository(s).due(stale_before=stale_before))

    def rows(self, run_id: uuid.UUID) -> list[Any]:
        with self.store.session() as s:
            return CompensationsRepository(s).rows(run_id)

    def _event(self, run_id: uuid.UUID, kind: str, payload: dict[str, Any]) -> None:
        with self.store.session() as s:
            self._append(s, run_id, kind, payload)

    @staticmethod
    def _append(s: Session, run_id: uuid.UUID, kind: str, payload: dict[str, Any]) -> None:
        run = s.get(OrchestrationRun, run_id)
        EventsRepository(s).append(
            organization=run.organization if run else "global",
            type=kind,
            run_id=run_id,
            payload=payload,
        )


def _action(
    run: OrchestrationRun, *, by: str, via: str, reason: str | None, steps: list[str]
) -> ActionRecord:
    """The audit entry of an operator's compensate (the run's state when it was asked)."""
    return ActionRecord(
        organization=run.organization,
        run_id=run.id,
        step_id=None,
        action="compensate",
        by=by,
        via=via,
        reason=reason,
        details={"steps": steps},
        run_status=run.status,
        step_status=None,
    )
