"""Marks an orchestration run failed when its Dagster run fails outside any op's control.

Ops record their own failures; this covers what they cannot: a bad run config, a crash
between ops. A run worker killed mid-step leaves that step ``running``: the reaper
(``baton.reaper``) owns that case, so its retry policy applies.
"""

from __future__ import annotations

import uuid

from dagster import DefaultSensorStatus, RunFailureSensorContext, run_failure_sensor

from baton.segments import COMPENSATION_TAG, RUN_TAG, segment_of_dagster_run
from orchestration_defs.compiler.resources import BatonStoreResource


@run_failure_sensor(
    name="baton_run_failure_sensor",
    description="Marks the orchestration run failed when its Dagster run fails.",
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=10,
)
def baton_run_failure_sensor(
    context: RunFailureSensorContext, baton_store: BatonStoreResource
) -> None:
    tag = context.dagster_run.tags.get(RUN_TAG)
    if not tag or context.dagster_run.tags.get(COMPENSATION_TAG):
        return  # a compensation job records its own failures (baton.compensation)
    store = baton_store.store()
    orphans = store.running_in(uuid.UUID(tag), context.dagster_run.run_id)
    if orphans:
        # The reaper's to fail: it fails the step and the run in one transaction and applies
        # the step's retry policy, which a run already failed here would no longer get.
        context.log.info(
            f"orchestration run {tag}: step(s) {', '.join(orphans)} still running in this "
            "Dagster run; the reaper fails them and applies their retry policy"
        )
        return
    message = context.failure_event.message or "the Dagster run failed"
    changed = store.fail_run_of_segment(
        uuid.UUID(tag),
        segment_of_dagster_run(context.dagster_run),
        {
            "message": message,
            "type": "DagsterRunFailure",
            "dagster_run_id": context.dagster_run.run_id,
        },
    )
    if changed:
        context.log.info(f"orchestration run {tag} marked failed")
