"""Marks an orchestration run failed when its Dagster run fails outside any op's control.

Ops record their own failures; this covers what they cannot: a run worker killed, a bad run
config, a crash between ops.
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
    message = context.failure_event.message or "the Dagster run failed"
    changed = baton_store.store().fail_run_of_segment(
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
