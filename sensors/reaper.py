"""Thin entry point of Baton's reaper (``baton.reaper``): no step left ``running``.

It reads the settings, hands the reaper Dagster's view of the owners, and where an attempt's
lease expired while Dagster still shows its run STARTED, records that run as failed (the
launcher could not tell the worker died). Orphans whose step's retry policy allows another
attempt are retried once their delay passed (``baton.orphan_retry``): the lifecycle makes the
guarded change and this sensor returns the segment as a run request, as the other sensors do.
A retry segment whose request was lost (the daemon stopped after the change committed and
before Dagster stored the request) is asked for again once ``claim_lease_seconds`` passed,
under the same run key ``reaper-retry:<segment>``: Dagster creates the run if it has none for
that key, or submits the one it created and never submitted.
It keeps no cursor: every write is a compare-and-set in the store, so a repeated tick changes
nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from baton import segments
from baton.launch import LaunchError
from baton.lifecycle import Lifecycle, Prepared
from baton.orphan_retry import VIA, dagster_segment_started, start_due, unstarted
from baton.reaper import ENDED, dagster_owner_statuses, end_stale_owner, reap
from baton.settings import get_settings
from baton.store.service import RunStore
from orchestration_defs.compiler.resources import BatonStoreResource

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _MissingJob:
    """A launcher that refuses: the retry's job is not in the code location, so the lifecycle
    puts the run back to failed with the reason (an operator retries once the job is back)."""

    def __init__(self, job: str) -> None:
        self.job = job

    def launch(self, segment: segments.SegmentPlan) -> str:
        raise LaunchError(f"job '{self.job}' is not in the code location")

    def settle(self, run_id: object, status: str, **_kwargs: object) -> None:
        pass


def build_reaper_sensor(job_names: Sequence[str], *, clock: Clock = _utcnow) -> SensorDefinition:
    """The reaper for the code location's jobs ``job_names`` (targeted by name, for retries);
    ``clock`` is the tick's now (tests pass their own)."""
    known = set(job_names)

    @sensor(
        name="baton_reaper_sensor",
        minimum_interval_seconds=get_settings().sensors.reaper_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description="Fails step attempts whose Dagster run ended or whose heartbeat expired, "
        "retries them under the step's retry policy, and fails runs whose Dagster run was "
        "canceled or failed.",
    )
    def baton_reaper_sensor(
        context: SensorEvaluationContext, baton_store: BatonStoreResource
    ) -> SensorResult | SkipReason:
        store = baton_store.store()
        now = clock()
        reaped = _reap(context, store, now)
        notes: list[str] = []
        requests = _retries(store, now, known, notes) + _relaunches(
            context, store, now, known, notes
        )
        for note in notes:
            context.log.warning(note)
        if requests:
            for request in requests:
                context.log.info(f"retrying under the step's retry policy: {request.tags}")
            return SensorResult(run_requests=requests)
        if reaped:
            notes.insert(0, f"{reaped} orphan(s) failed")
        return SkipReason("; ".join(notes) or "no orphaned step attempt")

    return baton_reaper_sensor


def _reap(context: SensorEvaluationContext, store: RunStore, now: datetime) -> int:
    lease = get_settings().sensors.step_lease_seconds
    reaped = reap(store, dagster_owner_statuses(context.instance), lease_seconds=lease, now=now)
    for item in reaped:
        where = (
            f"step '{item.step_id}' of run {item.run_id}" if item.step_id else f"run {item.run_id}"
        )
        context.log.info(f"reaped {where}: {item.reason}")
        if item.owner_status not in ENDED:
            end_stale_owner(context.instance, item.owner, item.reason)
    return len(reaped)


def _retries(store: RunStore, now: datetime, known: set[str], notes: list[str]) -> list[RunRequest]:
    requests = []
    for prepared in start_due(store, now):
        job = prepared.segment.job_name
        if job in known:
            requests.append(_request(prepared.segment))
            continue
        launched = Lifecycle(store, _MissingJob(job), via=VIA).launch_prepared(prepared)
        notes.append(_not_launched(prepared, launched.error or f"job '{job}' is missing"))
    return requests


def _relaunches(
    context: SensorEvaluationContext,
    store: RunStore,
    now: datetime,
    known: set[str],
    notes: list[str],
) -> list[RunRequest]:
    bound = get_settings().sensors.claim_lease_seconds
    requests = []
    for relaunch in unstarted(store, dagster_segment_started(context.instance), now, bound):
        notes.append(f"run {relaunch.segment.run_id}: {relaunch.reason}")
        if relaunch.segment.job_name in known:
            requests.append(_request(relaunch.segment))
        else:
            notes.append(f"job '{relaunch.segment.job_name}' is not in the code location")
    return requests


def _not_launched(prepared: Prepared, error: str) -> str:
    return (
        f"the policy retry of step '{prepared.step_id}' of run {prepared.segment.run_id} was "
        f"not launched: {error}; the run is failed again (an operator may retry it)"
    )


def _request(segment: segments.SegmentPlan) -> RunRequest:
    # The run key shows the retry on the sensor's page; asked again for a lost request, it is
    # the same key, so Dagster makes at most one run of the segment.
    return segments.run_request(replace(segment, run_key=f"reaper-retry:{segment.segment_id}"))


# The sensor without jobs to launch (a code location with no library): it still reaps.
baton_reaper_sensor = build_reaper_sensor(())
