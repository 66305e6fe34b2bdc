"""Thin entry point of Baton's reaper (``baton.reaper``): no step left ``running``.

It reads the settings, hands the reaper Dagster's view of the owners, and where an attempt's
lease expired while Dagster still shows its run STARTED, records that run as failed (the
launcher could not tell the worker died). It requests no runs and keeps no cursor: every
write is a compare-and-set in the store, so a repeated tick changes nothing.
"""

from __future__ import annotations

from dagster import DefaultSensorStatus, SensorEvaluationContext, SkipReason, sensor

from baton.reaper import ENDED, dagster_owner_statuses, end_stale_owner, reap
from baton.settings import get_settings
from orchestration_defs.compiler.resources import BatonStoreResource


@sensor(
    name="baton_reaper_sensor",
    minimum_interval_seconds=get_settings().sensors.reaper_interval_seconds,
    default_status=DefaultSensorStatus.RUNNING,
    description="Fails step attempts whose Dagster run ended or whose heartbeat expired, and "
    "runs whose Dagster run was canceled or failed. Requests no runs.",
)
def baton_reaper_sensor(
    context: SensorEvaluationContext, baton_store: BatonStoreResource
) -> SkipReason:
    lease = get_settings().sensors.step_lease_seconds
    reaped = reap(
        baton_store.store(), dagster_owner_statuses(context.instance), lease_seconds=lease
    )
    for item in reaped:
        where = (
            f"step '{item.step_id}' of run {item.run_id}" if item.step_id else f"run {item.run_id}"
        )
        context.log.info(f"reaped {where}: {item.reason}")
        if item.owner_status not in ENDED:
            end_stale_owner(context.instance, item.owner, item.reason)
    if not reaped:
        return SkipReason("no orphaned step attempt")
    return SkipReason(f"{len(reaped)} orphan(s) failed")
