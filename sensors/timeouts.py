"""The checkpoint timeout sensor: applies ``on_timeout`` to approvals past their deadline.

abort / fail end the run; continue decides the approval (the approval sensor then resumes the
run); escalate hands the approval to other approvers with a new deadline and announces it.
"""

from __future__ import annotations

from dagster import (
    DefaultSensorStatus,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from baton.approvals import Approvals
from baton.notify import notify_pending
from baton.settings import get_settings
from orchestration_defs.compiler.resources import BatonStoreResource


@sensor(
    name="baton_checkpoint_timeout_sensor",
    minimum_interval_seconds=get_settings().sensors.timeout_interval_seconds,
    default_status=DefaultSensorStatus.RUNNING,
    description="Applies on_timeout to checkpoint approvals past their deadline.",
)
def baton_checkpoint_timeout_sensor(
    context: SensorEvaluationContext, baton_store: BatonStoreResource
) -> SensorResult | SkipReason:
    approvals = Approvals(baton_store.store())
    done = approvals.expire_due()
    if not done:
        return SkipReason("no pending approval is past its deadline")
    for approval, action in done:
        context.log.info(f"approval {approval.id}: timed out, {action}")
        if action == "escalate":
            current = approvals.get(approval.id)
            notice = {
                "event": "checkpoint.escalated",
                "approval_id": str(current.id),
                "run_id": str(current.run_id),
                "step_id": current.step_id,
                "prompt": current.prompt,
                "approvers": current.policy.get("approvers"),
            }
            notify_pending(current.policy.get("notify") or [], notice)
    return SensorResult(cursor=str(done[-1][0].id))
