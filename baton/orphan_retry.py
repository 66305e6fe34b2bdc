"""The step's own ``retry:`` policy, applied by the reaper to an orphaned attempt.

The process that would have applied the policy (Dagster's op retry inside the run worker) is
gone, so the reaper applies it: an orphan whose step allows another attempt is failed with its
reason and marked ``will_retry`` with the moment the policy's delay ends (``retry_at``, on the
step's row, indexed, and on its error and the run's for people). Once that moment passes, a
reaper tick retries it through the lifecycle (``Lifecycle.prepare_retry``, by "reaper" via
"sensor"): a new segment of the same orchestration run that re-runs the step, completed steps
reused. The attempt's call may have reached the agent, so the retry keeps its idempotency key
(the lifecycle leaves ``call_number`` alone for an orphan). The retry clears ``retry_at`` in its
transaction, so it is taken once; an operator's retry, skip or abort that came first wins.

The segment is handed to Dagster as the sensor's run request. A daemon that dies after the
retry committed and before Dagster stored the request would leave the run ``running`` on a
segment that never starts: ``unstarted`` finds such a segment once ``claim_lease_seconds``
passed (the retry's event names it) and asks for the same segment again, with an event.

The retry spec is read from the stored definition (the run's orchestration and version in
Baton's definitions table), never from the code location. "Attempts" are the step's attempt
counter: every start of the step in this run, re-executions and operator retries included.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from baton import segments
from baton.db.models import OrchestrationEvent, OrchestrationRun
from baton.lifecycle import Lifecycle, LifecycleError, Prepared
from baton.retry_policy import delay_seconds
from baton.store.definitions import DefinitionsRepository
from baton.store.events import EventsRepository
from baton.store.service import RunStore
from baton.store.steps import StepsRepository
from orchestration_defs.language.models import OrchestrationSpec, RetrySpec

BY = "reaper"
VIA = "sensor"
RETRIED = "step.retry_requested"
RELAUNCHED = "segment.relaunch_requested"
# Of these, the newest event of a running run says whether its active segment has started.
_SEGMENT_EVENTS = (RETRIED, RELAUNCHED, "run.segment_started")

# ``started(segment_id)``: whether Dagster holds a run of that segment past NOT_STARTED (a run
# the daemon created but never submitted is resubmitted by Dagster for the same run key).
Started = Callable[[str], bool]


@dataclass(frozen=True)
class RetryPlan:
    """What the policy says about one orphaned attempt."""

    will_retry: bool
    retry_at: datetime | None
    note: str  # "retry 2 of 3 in 5 s" or "retry policy exhausted (3 of 3 attempts)"

    def fields(self) -> dict[str, Any]:
        """What the orphan's error and its event carry."""
        at = self.retry_at.isoformat() if self.retry_at else None
        return {"will_retry": self.will_retry, "retry_at": at, "retry_policy": self.note}


def plan_for(spec: RetrySpec, attempt: int, now: datetime) -> RetryPlan:
    """Whether the orphan of attempt ``attempt`` gets another one, and when."""
    total = spec.max_attempts
    if attempt >= total:
        return RetryPlan(False, None, f"retry policy exhausted ({attempt} of {total} attempts)")
    wait = delay_seconds(spec, attempt)
    note = f"retry {attempt + 1} of {total} in {wait:g} s"
    return RetryPlan(True, now + timedelta(seconds=wait), note)


def retry_spec(session: Any, run: OrchestrationRun, step_id: str) -> RetrySpec:
    """The step's ``retry:`` in the stored definition of the run's version (a single attempt
    when the version or the step is not stored, or it is not an agent step)."""
    definition = DefinitionsRepository(session).get(
        run.organization, run.orchestration, run.version
    )
    if definition is None:
        return RetrySpec()
    spec = OrchestrationSpec.model_validate(definition.spec)
    step = next((s for s in spec.steps if s.id == step_id), None)
    return step.retry if step is not None else RetrySpec()


def due(store: RunStore, now: datetime) -> list[tuple[uuid.UUID, str]]:
    """Orphaned steps of failed runs whose policy retry is due: (run, step), oldest first."""
    with store.session() as s:
        return StepsRepository(s).due_retries(now)


def start_due(store: RunStore, now: datetime) -> list[Prepared]:
    """Put every due orphan's run back to running (the step keeps its call), guarded: an
    operator's retry, skip or abort that came first wins and this one is dropped, its
    ``retry_at`` cleared so no later tick asks again. Returns the segments to launch."""
    lifecycle = Lifecycle(store, None, via=VIA)
    prepared = []
    for run_id, step_id in due(store, now):
        try:
            prepared.append(lifecycle.prepare_retry(run_id, step_id, by=BY))
        except LifecycleError:  # refused (and audited): someone moved the run on meanwhile
            with store.session() as s:
                StepsRepository(s).take_retry(run_id, step_id)
    return prepared


@dataclass(frozen=True)
class Relaunch:
    """A retry segment the reaper asked for that never reached Dagster, asked for again."""

    segment: segments.SegmentPlan
    reason: str


def unstarted(store: RunStore, started: Started, now: datetime, bound: float) -> list[Relaunch]:
    """Running runs whose active segment is a reaper retry asked for (or asked again) more
    than ``bound`` seconds ago and not started in Dagster: each planned again under the same
    segment id, with a ``segment.relaunch_requested`` event saying why."""
    found = []
    for run_id, segment_id, asked_at in _waiting_retries(store):
        age = (now - _aware(asked_at)).total_seconds()
        if age < bound or started(segment_id):
            continue
        reason = (
            f"the reaper's retry segment {segment_id} was asked for {age:.0f} s ago "
            f"(bound {bound:g} s) and Dagster has no run of it: the request was lost "
            "(the daemon stopped before storing it); asked again"
        )
        plan = Lifecycle(store, None, via=VIA).plan_again(run_id, segment_id, user=BY)
        if _record_relaunch(store, run_id, segment_id, reason):
            found.append(Relaunch(plan, reason))
    return found


def _waiting_retries(store: RunStore) -> list[tuple[uuid.UUID, str, datetime]]:
    """(run, active segment, when asked) of running runs whose newest segment event is the
    reaper's retry (or relaunch) of that very segment: it has not started since."""
    events = OrchestrationEvent
    newest = (
        select(events.run_id, func.max(events.sequence).label("sequence"))
        .join(OrchestrationRun, OrchestrationRun.id == events.run_id)
        .where(OrchestrationRun.status == "running", events.type.in_(_SEGMENT_EVENTS))
        .group_by(events.run_id)
        .subquery()
    )
    query = (
        select(OrchestrationRun.id, OrchestrationRun.segment_id, events.payload, events.created_at)
        .join(newest, newest.c.run_id == OrchestrationRun.id)
        .join(events, events.sequence == newest.c.sequence)
        .where(events.type.in_((RETRIED, RELAUNCHED)))
    )
    with store.session() as s:
        rows = s.execute(query).all()
    return [
        (run_id, segment_id, at)
        for run_id, segment_id, payload, at in rows
        if payload.get("by") == BY and segment_id and payload.get("segment_id") == segment_id
    ]


def _record_relaunch(store: RunStore, run_id: uuid.UUID, segment_id: str, reason: str) -> bool:
    """The event, while the segment is still the run's active one (False if it moved on)."""
    with store.session() as s:
        run = s.get(OrchestrationRun, run_id)
        if run is None or run.status != "running" or run.segment_id != segment_id:
            return False
        EventsRepository(s).append(
            organization=run.organization,
            type=RELAUNCHED,
            run_id=run_id,
            payload={"segment_id": segment_id, "by": BY, "via": VIA, "reason": reason},
        )
    return True


def dagster_segment_started(instance: Any) -> Started:
    """``Started`` read from a Dagster instance (its runs tagged with the segment)."""
    from dagster import DagsterRunStatus, RunsFilter

    def started(segment_id: str) -> bool:
        runs = instance.get_runs(RunsFilter(tags={segments.SEGMENT_TAG: segment_id}))
        return any(run.status != DagsterRunStatus.NOT_STARTED for run in runs)

    return started


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; they were written in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


__all__ = [
    "Relaunch",
    "RetryPlan",
    "dagster_segment_started",
    "due",
    "plan_for",
    "retry_spec",
    "start_due",
    "unstarted",
]
