"""The approval sensor: the safety net that resumes runs whose decision no one launched.

A decision recorded through the API, the CLI or the page launches the next segment at once
from the process that recorded it (``baton.lifecycle``). This sensor picks up what that fast
path left: decisions recorded where nothing could launch (the timeout sensor's ``continue``),
and claims whose launcher failed or died before its segment started.

Exactly-once comes from two guards together: claiming is a guarded ``decided -> resuming``
update (or a takeover guarded on the claim's time) that only one caller wins, and every
request carries a ``run_key`` per claim, so a tick evaluated twice (the cursor is written
after the tick) launches nothing new. A claimed approval whose job is not in the code location
says so (on the approval, in an event, in this sensor's skip reason) and is launched as soon
as the job is back.
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
from baton.approvals import SENSOR, Approvals, Claim
from baton.settings import get_settings
from orchestration_defs.compiler.resources import BatonStoreResource


def resume_request(claim: Claim) -> RunRequest:
    """The next segment of the claimed approval's run."""
    return segments.run_request(claim.segment(SENSOR))


def build_approval_sensor(
    job_names: Sequence[str], jobs: Sequence[object] = ()
) -> SensorDefinition:
    """The sensor for the code location's jobs ``job_names``.

    It targets no job itself: ``sensors.definitions.targeting`` lets it launch the jobs by
    name, so building it builds no job. ``jobs`` is ignored (older callers pass them).
    """
    known = set(job_names)

    @sensor(
        name="baton_approval_sensor",
        minimum_interval_seconds=get_settings().sensors.approval_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description="Resumes orchestration runs whose decided approval no process launched.",
    )
    def baton_approval_sensor(
        context: SensorEvaluationContext, baton_store: BatonStoreResource
    ) -> SensorResult | SkipReason:
        approvals = Approvals(baton_store.store())
        lease = get_settings().sensors.claim_lease_seconds
        requests: list[RunRequest] = []
        waiting: list[str] = []
        for approval in approvals.resumable():
            if approval.status == "decided":
                claim = approvals.claim(approval.id, by=SENSOR)
            elif _launched(context, approval.id):
                continue  # resuming, and its segment exists: the run goes on
            else:
                claim = approvals.reclaim(approval.id, by=SENSOR, lease_seconds=lease)
                if claim is None:
                    waiting.append(f"{approval.id} (claimed by {approval.claimed_by})")
            if claim is None or not claim.launch:
                continue
            if claim.job not in known:
                reason = f"job '{claim.job}' is not in the code location"
                if approvals.launch_failed(claim.approval_id, reason=reason, release=False):
                    context.log.warning(f"approval {claim.approval_id}: {reason}; it waits")
                waiting.append(f"{claim.approval_id} ({reason})")
                continue
            requests.append(resume_request(claim))
        if not requests:
            why = "no decided approval waits for its segment"
            if waiting:
                why = "approvals wait on the system: " + "; ".join(waiting)
            return SkipReason(why)
        # The cursor only records progress for people reading the sensor page: the approvals'
        # status, not a cursor, selects the work, so a crashed tick loses nothing.
        return SensorResult(run_requests=requests, cursor=requests[-1].run_key)

    return baton_approval_sensor


def _launched(context: SensorEvaluationContext, approval_id: object) -> bool:
    runs = context.instance.get_run_records(
        RunsFilter(tags={segments.APPROVAL_TAG: str(approval_id)}), limit=1
    )
    return bool(runs)
