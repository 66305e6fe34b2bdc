"""The children sensor: the safety net of sub-orchestrations.

A child's own end (its finish op, its final failure, an abort through the lifecycle) is the
fast path that launches the next children and resumes the parent. This sensor picks up what
that path left: parents whose children all ended while nothing advanced them (a child failed
in a way no op recorded, a timeout), and claimed launches whose segment never started (the
claiming process could not launch, or died). Exactly-once comes from the guarded changes in
``baton.children`` (the parent row is locked, ``awaiting_children -> running`` is won once)
plus a ``run_key`` per claim, so a tick evaluated twice launches nothing new.
"""

from __future__ import annotations

from collections.abc import Sequence

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from baton import segments
from baton.children import SENSOR, Advance, Children
from baton.dagster_status import settle_run
from baton.settings import get_settings
from orchestration_defs.compiler.resources import BatonStoreResource


def build_children_sensor(job_names: Sequence[str]) -> SensorDefinition:
    """The sensor for the code location's jobs ``job_names`` (targeted by name)."""
    known = set(job_names)

    @sensor(
        name="baton_children_sensor",
        minimum_interval_seconds=get_settings().children.sensor_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description="Launches child runs and resumes parents that no process launched.",
    )
    def baton_children_sensor(
        context: SensorEvaluationContext, baton_store: BatonStoreResource
    ) -> SensorResult | SkipReason:
        children = Children(baton_store.store(), via=SENSOR)
        plans: list[segments.SegmentPlan] = []
        for parent_id in children.waiting_parents():
            plans.extend(_advance(context, children, children.advance(parent_id)))
        notes: list[str] = []
        lease = get_settings().sensors.claim_lease_seconds
        for run in children.unstarted_claims():
            started = _segment_run(context, run.segment_id)
            if started is not None:
                children.started(run.id, dagster_run_id=started)
                continue
            plan = children.reclaim(run.id, lease_seconds=lease)
            if plan is None:
                notes.append(f"{run.id} (claimed by {run.launch_claimed_by}, within its lease)")
            else:
                plans.append(plan)
        requests: list[RunRequest] = []
        for plan in plans:
            if plan.job_name not in known:
                reason = f"job '{plan.job_name}' is not in the code location"
                children.launch_failed(plan.run_id, segment_id=plan.segment_id, reason=reason)
                notes.append(f"{plan.run_id} ({reason})")
                continue
            requests.append(segments.run_request(plan))
        if not requests:
            why = "no child run or parent waits for a segment"
            if notes:
                why = "runs wait on the system: " + "; ".join(notes)
            return SkipReason(why)
        # The runs' status, not the cursor, selects the work; the cursor shows progress.
        return SensorResult(run_requests=requests, cursor=requests[-1].run_key)

    return baton_children_sensor


def _advance(
    context: SensorEvaluationContext, children: Children, advance: Advance
) -> list[segments.SegmentPlan]:
    """Carry out one parent's change: settle what ended, and pass a parent's end upwards."""
    plans = list(advance.launch)
    while True:
        for run_id, status, last, reason in advance.settle:
            try:
                settle_run(
                    context.instance, run_id, status, last_dagster_run_id=last, reason=reason
                )
            except Exception as exc:  # the store is right; the status sensor settles later
                context.log.warning(f"could not settle {run_id}: {type(exc).__name__}")
        if advance.ended is None:
            return plans
        advance = children.child_ended(advance.ended)
        plans.extend(advance.launch)


def _segment_run(context: SensorEvaluationContext, segment_id: str | None) -> str | None:
    if segment_id is None:
        return None
    records = context.instance.get_run_records(
        RunsFilter(tags={segments.SEGMENT_TAG: segment_id}), limit=1
    )
    return records[0].dagster_run.run_id if records else None
