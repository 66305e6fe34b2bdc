"""The approval sensor: a decided approval launches the next segment of its run, once.

Exactly-once comes from two guards together: claiming an approval is a guarded
``decided -> resuming`` update that only one caller wins, and every request carries
``run_key = baton-approval-<id>`` so a tick evaluated twice (the cursor is written after the
tick) launches nothing new. A claim whose run was never created is requested again.
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

from baton.approvals import Approvals, Claim
from baton.settings import get_settings
from orchestration_defs.compiler.common import RUN_TAG
from orchestration_defs.compiler.resources import BatonStoreResource
from orchestration_defs.language.models import pinned_job_name

APPROVAL_TAG = "baton/approval_id"
CONTINUES_TAG = "baton/continues"


def run_key(approval_id: object) -> str:
    return f"baton-approval-{approval_id}"


def resume_request(claim: Claim, job_name: str | None = None) -> RunRequest:
    """The next segment of the claimed approval's run, as a run of ``job_name``."""
    tags = {
        RUN_TAG: str(claim.run_id),
        APPROVAL_TAG: str(claim.approval_id),
        "baton/decision": claim.decision,
    }
    if claim.last_dagster_run_id:
        tags[CONTINUES_TAG] = claim.last_dagster_run_id
    return RunRequest(
        run_key=run_key(claim.approval_id),
        job_name=job_name or claim.orchestration.replace("-", "_"),
        run_config={"inputs": claim.inputs, "baton_run_id": str(claim.run_id)},
        tags=tags,
    )


def build_approval_sensor(
    job_names: Sequence[str], jobs: Sequence[object] = ()
) -> SensorDefinition:
    """The sensor for the code location's jobs ``job_names``.

    It targets no job itself: ``sensors.definitions.targeting`` lets it launch the jobs by
    name, so building it builds no job. ``jobs`` is ignored (older callers pass them).
    """

    @sensor(
        name="baton_approval_sensor",
        minimum_interval_seconds=get_settings().sensors.approval_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description="Resumes orchestration runs whose checkpoint approval was decided.",
    )
    def baton_approval_sensor(
        context: SensorEvaluationContext, baton_store: BatonStoreResource
    ) -> SensorResult | SkipReason:
        approvals = Approvals(baton_store.store())
        requests: list[RunRequest] = []
        for approval in approvals.resumable():
            if approval.status == "decided":
                claim = approvals.claim(approval.id)
                if claim is None:
                    continue  # another caller claimed it first
            elif _launched(context, approval.id):
                continue  # resuming, and its segment exists: the run goes on
            else:
                claim = approvals.reclaim(approval.id)
            job = _job(claim, job_names) if claim is not None else None
            if claim is not None and claim.launch and job is not None:
                requests.append(resume_request(claim, job))
        if not requests:
            return SkipReason("no decided approvals waiting to resume a run")
        # The cursor only records progress for people reading the sensor page: the approvals'
        # status, not a cursor, selects the work, so a crashed tick loses nothing.
        return SensorResult(run_requests=requests, cursor=requests[-1].run_key)

    return baton_approval_sensor


def _job(claim: Claim, job_names: Sequence[str]) -> str | None:
    """The job the run continues on: its own version's pinned job when the library has moved
    on (see ``orchestration_defs.definitions``), else the slug's job; None if neither is here."""
    pinned = pinned_job_name(claim.orchestration, claim.version)
    plain = claim.orchestration.replace("-", "_")
    return next((name for name in (pinned, plain) if name in job_names), None)


def _launched(context: SensorEvaluationContext, approval_id: object) -> bool:
    runs = context.instance.get_run_records(
        RunsFilter(tags={APPROVAL_TAG: str(approval_id)}), limit=1
    )
    return bool(runs)
