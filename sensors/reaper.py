"""Thin entry point of Baton's reaper (``baton.reaper``): no step left ``running``.

It reads the settings, hands the reaper Dagster's view of the owners, and where an attempt's
lease expired while Dagster still shows its run STARTED, records that run as failed (the
launcher could not tell the worker died). Orphans whose step's retry policy allows another
attempt are retried once their delay passed (``baton.orphan_retry``): the lifecycle makes the
guarded change and this sensor returns the segment as a run request, as the other sensors do.
It keeps no cursor: every write is a compare-and-set in the store, so a repeated tick changes
nothing, and a tick whose requests the daemon did not submit is resumed by Dagster.
"""

from __future__ import annotations

from collections.abc import Sequence
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
from baton.orphan_retry import VIA, start_due
from baton.reaper import ENDED, dagster_owner_statuses, end_stale_owner, reap
from baton.settings import get_settings
from baton.store.service import RunStore
from orchestration_defs.compiler.resources import BatonStoreResource


class _MissingJob:
    """A launcher that refuses: the retry's job is not in the code location, so the lifecycle
    puts the step back to failed with the reason (an operator retries once the job is back)."""

    def __init__(self, job: str) -> None:
        self.job = job

    def launch(self, segment: segments.SegmentPlan) -> str:
        raise LaunchError(f"job '{self.job}' is not in the code location")

    def settle(self, run_id: object, status: str, **_kwargs: object) -> None:
        pass


def build_reaper_sensor(job_names: Sequence[str]) -> SensorDefinition:
    """The reaper for the code location's jobs ``job_names`` (targeted by name, for retries)."""
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
        reaped = _reap(context, store)
        requests = [_request(store, p, known) for p in start_due(store, datetime.now(UTC))]
        launched = [r for r in requests if r is not None]
        for request in launched:
            context.log.info(f"retrying under the step's retry policy: {request.tags}")
        if launched:
            return SensorResult(run_requests=launched, cursor=launched[-1].run_key)
        if not reaped:
            return SkipReason("no orphaned step attempt")
        return SkipReason(f"{reaped} orphan(s) failed")

    return baton_reaper_sensor


def _reap(context: SensorEvaluationContext, store: RunStore) -> int:
    lease = get_settings().sensors.step_lease_seconds
    reaped = reap(store, dagster_owner_statuses(context.instance), lease_seconds=lease)
    for item in reaped:
        where = (
            f"step '{item.step_id}' of run {item.run_id}" if item.step_id else f"run {item.run_id}"
        )
        context.log.info(f"reaped {where}: {item.reason}")
        if item.owner_status not in ENDED:
            end_stale_owner(context.instance, item.owner, item.reason)
    return len(reaped)


def _request(store: RunStore, prepared: Prepared, known: set[str]) -> RunRequest | None:
    job = prepared.segment.job_name
    if job not in known:
        Lifecycle(store, _MissingJob(job), via=VIA).launch_prepared(prepared)
        return None
    # The run key shows the retry on the sensor's page (and dedupes a resubmitted request).
    keyed = replace(prepared.segment, run_key=f"reaper-retry:{prepared.segment.segment_id}")
    return segments.run_request(keyed)


# The sensor without jobs to launch (a code location with no library): it still reaps.
baton_reaper_sensor = build_reaper_sensor(())
