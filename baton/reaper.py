"""The reaper: no step stays ``running`` after the process running it is gone.

Each step attempt records its owner (the Dagster run that started it) and a heartbeat the
owner renews while its agent call runs (``orchestration_defs.compiler.heartbeat``). An attempt
is an orphan when its owner ended (SUCCESS, FAILURE or CANCELED in Dagster) while the step was
still running, or when its heartbeat is older than the lease (a worker killed where the run
launcher cannot tell). The reaper fails an orphan with the reason (event ``step.orphaned``) and
fails its run, so an operator's retry or skip applies; where the step's own ``retry:`` policy
allows another attempt, the orphan is marked ``will_retry`` and the reaper retries it once the
policy's delay passed (``baton.orphan_retry``). A force-terminated (CANCELED) Dagster
run with no step running fails its Baton run too: *failed*, not aborted, because a failed run
can still be retried or skipped from where it stopped, while an abort is final.

It never races a live step: the write is a compare-and-set on (step, attempt, owner, running),
so an attempt that completed, failed or was started again meanwhile is left alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from baton.compensation import plan as plan_compensation
from baton.orphan_retry import RetryPlan, plan_for, retry_spec
from baton.state import IllegalTransition
from baton.store.events import EventsRepository
from baton.store.runs import RunsRepository
from baton.store.service import RunStore
from baton.store.steps import StepsRepository

if TYPE_CHECKING:
    from dagster import DagsterInstance

# Dagster statuses after which the run's process does no more work.
ENDED = frozenset({"SUCCESS", "FAILURE", "CANCELED"})
# Of those, the ones a Baton run still ``running`` must follow even with no step running.
RUN_ENDED = frozenset({"FAILURE", "CANCELED"})

# A slice of Dagster's run ids per query.
BATCH = 500


@dataclass(frozen=True)
class Owner:
    """A Dagster run as the reaper sees it."""

    status: str  # Dagster's status value: STARTED, CANCELED...
    segment: str  # the segment it is (``baton.segments.segment_of_dagster_run``)


# Dagster run ids -> what Dagster knows of them; unknown ids are left out.
OwnerStatuses = Callable[[Sequence[str]], Mapping[str, Owner]]


@dataclass(frozen=True)
class Attempt:
    """A running step attempt and its lease."""

    run_id: uuid.UUID
    step_id: str
    attempt: int
    owner: str | None
    heartbeat_at: datetime | None


@dataclass(frozen=True)
class Reaped:
    """What one tick failed, and why."""

    run_id: uuid.UUID
    step_id: str | None  # None: a run whose Dagster run ended with no step running
    owner: str
    owner_status: str | None
    reason: str


def orphan_reason(
    attempt: Attempt, owner_status: str | None, now: datetime, lease: timedelta
) -> str | None:
    """Why ``attempt`` is an orphan, or None while its owner may still be working on it."""
    if owner_status in ENDED:
        return f"its Dagster run {attempt.owner} ended {owner_status} while the step was running"
    beat = _aware(attempt.heartbeat_at) if attempt.heartbeat_at else None
    if beat is not None and now - beat > lease:
        age = (now - beat).total_seconds()
        return f"no heartbeat for {age:.0f} s (lease {lease.total_seconds():g} s)"
    return None


def reap(
    store: RunStore, owners: OwnerStatuses, *, lease_seconds: float, now: datetime | None = None
) -> list[Reaped]:
    """Fail every orphaned attempt and every running run whose Dagster run ended."""
    now = now or datetime.now(UTC)
    lease = timedelta(seconds=lease_seconds)
    attempts = running_attempts(store)
    runs = _running_runs(store)
    known = owners(sorted({a.owner for a in attempts if a.owner} | set(runs.values())))
    reaped: list[Reaped] = []
    for attempt in attempts:
        found = known.get(attempt.owner) if attempt.owner else None
        status = found.status if found else None
        reason = orphan_reason(attempt, status, now, lease)
        if (
            reason is not None
            and attempt.owner
            and _fail_attempt(store, attempt, status, reason, now)
        ):
            reaped.append(Reaped(attempt.run_id, attempt.step_id, attempt.owner, status, reason))
    for run_id, owner in runs.items():
        found = known.get(owner)
        if found is not None and found.status in RUN_ENDED:
            reason = f"its Dagster run {owner} ended {found.status}"
            error = {"message": reason, "type": "DagsterRunEnded"}
            if _fail_run(store, run_id, found.segment, error):
                reaped.append(Reaped(run_id, None, owner, found.status, reason))
    return reaped


def running_attempts(store: RunStore) -> list[Attempt]:
    with store.session() as s:
        return [
            Attempt(r.run_id, r.step_id, r.attempt, r.dagster_run_id, r.heartbeat_at)
            for r in StepsRepository(s).running()
        ]


def _running_runs(store: RunStore) -> dict[uuid.UUID, str]:
    """Running runs by id, with the Dagster run of their latest segment."""
    with store.session() as s:
        rows = RunsRepository(s).list(status="running", limit=10_000)
        return {r.id: r.last_dagster_run_id for r in rows if r.last_dagster_run_id}


def _fail_attempt(
    store: RunStore, attempt: Attempt, status: str | None, reason: str, now: datetime
) -> bool:
    """One transaction: the CAS on the attempt, its event, and its run failed if the owner is
    still the run's latest segment. False when the attempt moved on meanwhile."""
    assert attempt.owner is not None
    with store.session() as s:
        runs = RunsRepository(s)
        runs.lock(attempt.run_id)  # an operator's retry or abort waits, or wins first
        run = runs.get(attempt.run_id)
        # The run is failed (and so retried) only while this owner is its latest segment.
        fails_run = (
            run is not None and run.status == "running" and run.last_dagster_run_id == attempt.owner
        )
        retry = _retry_plan(s, run, attempt, now) if fails_run else None
        error: dict[str, Any] = {
            "message": reason,
            "type": "OrphanedAttempt",
            "kind": "orphaned",
            "retryable": True,
            **(retry.fields() if retry else {"will_retry": False}),
        }
        steps = StepsRepository(s)
        if not steps.fail_orphan(
            attempt.run_id,
            attempt.step_id,
            attempt=attempt.attempt,
            owner=attempt.owner,
            error=error,
            retry_at=retry.retry_at if retry else None,
        ):
            return False
        organization = run.organization if run else "global"
        payload: dict[str, Any] = {
            "step_id": attempt.step_id,
            "attempt": attempt.attempt,
            "dagster_run_id": attempt.owner,
            "dagster_status": status,
            "reason": reason,
            **{k: error[k] for k in ("will_retry", "retry_at", "retry_policy") if k in error},
        }
        events = EventsRepository(s)
        events.append(
            organization=organization, type="step.orphaned", run_id=attempt.run_id, payload=payload
        )
        if fails_run:
            message = f"{reason}; {retry.note}" if retry else reason
            run_error = {"step_id": attempt.step_id, **error, "message": message}
            _transition_failed(s, attempt.run_id, organization, run_error)
        return True


def _retry_plan(s: Any, run: Any, attempt: Attempt, now: datetime) -> RetryPlan:
    return plan_for(retry_spec(s, run, attempt.step_id), attempt.attempt, now)


def _fail_run(store: RunStore, run_id: uuid.UUID, segment: str, error: dict[str, Any]) -> bool:
    with store.session() as s:
        runs = RunsRepository(s)
        runs.lock(run_id)
        run = runs.get(run_id)
        # A retry or resume made another segment the active one (its Dagster run may not have
        # started yet): the ended run says nothing about the run any more.
        if run is None or run.status != "running" or run.segment_id not in (None, segment):
            return False
        return _transition_failed(s, run_id, run.organization, error)


def _transition_failed(s: Any, run_id: uuid.UUID, organization: str, error: dict[str, Any]) -> bool:
    try:
        RunsRepository(s).transition(run_id, "failed", error=error)
    except IllegalTransition:
        return False
    EventsRepository(s).append(
        organization=organization, type="run.failed", run_id=run_id, payload=error
    )
    run = RunsRepository(s).get(run_id)
    # An orphan's failure compensates as any failure does, once its retry policy is done: a
    # planned compensation would refuse the policy retry the reaper scheduled.
    if run is not None and not error.get("will_retry"):
        plan_compensation(s, run, "failed")
    return True


def dagster_owner_statuses(instance: DagsterInstance) -> OwnerStatuses:
    """``OwnerStatuses`` read from a Dagster instance."""
    from dagster import RunsFilter

    from baton.segments import segment_of_dagster_run

    def lookup(ids: Sequence[str]) -> dict[str, Owner]:
        found: dict[str, Owner] = {}
        for start in range(0, len(ids), BATCH):
            for run in instance.get_runs(RunsFilter(run_ids=list(ids[start : start + BATCH]))):
                found[run.run_id] = Owner(run.status.value, segment_of_dagster_run(run))
        return found

    return lookup


def end_stale_owner(instance: DagsterInstance, dagster_run_id: str, reason: str) -> bool:
    """Record a Dagster run whose lease expired as failed (it would show STARTED for good
    where the launcher cannot check its worker); False if it already ended or is unknown."""
    from dagster import DagsterRunStatus

    run = instance.get_run_by_id(dagster_run_id)
    if run is None or run.status not in (DagsterRunStatus.STARTED, DagsterRunStatus.STARTING):
        return False
    instance.report_run_failed(run, f"Baton's reaper: {reason}")
    return True


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; they were written in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


__all__ = ["Attempt", "Reaped", "dagster_owner_statuses", "end_stale_owner", "reap"]
