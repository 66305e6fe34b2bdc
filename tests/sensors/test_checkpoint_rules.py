"""Checkpoint rules: timeouts with each on_timeout, escalation, several approvers, self-approval."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from dagster import DagsterInstance, SkipReason, build_sensor_context

from baton.approvals import ApprovalError, Approvals
from baton.db.models import utcnow
from baton.store.service import RunStore
from orchestration_defs.compiler.resources import BatonStoreResource
from sensors.timeouts import baton_checkpoint_timeout_sensor
from tests.checkpoint_helpers import launch, pending, start, tick, users
from tests.fakes.http import FakeServer, Reply
from tests.helpers import ScriptedAgent, compile_text

TEMPLATE = """
slug: rules-{name}
name: Rules
version: 1
steps:
  - id: draft
    agent: echo
    with: {{title: t}}
  - id: review
    checkpoint:
      prompt: Go?
      show: "{{{{ steps.draft.output }}}}"
      approvers: [editors]
{extra}
  - id: after
    agent: echo
    with: {{v: "{{{{ steps.review.output.decision }}}}"}}
"""


def _flow(instance: DagsterInstance, extra: str):  # type: ignore[no-untyped-def]
    url = instance.baton_db_url  # type: ignore[attr-defined]
    users(url, ("ann", ["editors"]), ("bob", ["editors"]), ("cy", ["chiefs"]))
    text = TEMPLATE.format(name=uuid.uuid4().hex[:8], extra=extra)
    _, job = compile_text(text, url)
    return url, job


def _expire(url: str, minutes: int = 5) -> list:  # type: ignore[type-arg]
    return Approvals(RunStore(url)).expire_due(utcnow() + timedelta(minutes=minutes))


def _timeout_tick(instance: DagsterInstance, url: str) -> object:
    context = build_sensor_context(
        instance=instance, resources={"baton_store": BatonStoreResource(database_url=url)}
    )
    return baton_checkpoint_timeout_sensor(context)


@pytest.mark.parametrize(("action", "status"), [("abort", "aborted"), ("fail", "failed")])
def test_timeout_abort_and_fail_end_the_run(
    dagster_instance: DagsterInstance, action: str, status: str
) -> None:
    url, job = _flow(dagster_instance, f"      timeout: 1m\n      on_timeout: {action}")
    run_id = start(job, dagster_instance, url)
    assert isinstance(_timeout_tick(dagster_instance, url), SkipReason)  # not due yet
    [(approval, done)] = _expire(url)
    assert done == action
    run = RunStore(url).get_run(run_id)
    assert run.status == status
    assert "timed out" in run.error["message"]
    assert Approvals(RunStore(url)).get(approval.id).status == "expired"
    assert tick(dagster_instance, url, job) == []


def test_timeout_continue_resumes_through_the_approval_sensor(
    dagster_instance: DagsterInstance,
) -> None:
    url, job = _flow(dagster_instance, "      timeout: 1m\n      on_timeout: continue")
    run_id = start(job, dagster_instance, url)
    _expire(url)
    [request] = tick(dagster_instance, url, job)
    assert launch(
        job, dagster_instance, url, request, resources={"agent_echo": ScriptedAgent(key="t")}
    ).success
    run = RunStore(url).get_run(run_id)
    assert run.status == "completed"
    events = [e.type for e in RunStore(url).run_detail(run_id).events]
    assert "checkpoint.expired" in events


def test_escalation_hands_over_with_a_new_deadline_and_notifies(
    dagster_instance: DagsterInstance,
) -> None:
    with FakeServer() as hook:
        hook.route("POST", "/notify", lambda _r: Reply(204, {}))
        extra = (
            "      timeout: 1m\n"
            "      on_timeout: {escalate: {to: [chiefs], timeout: 2h, on_timeout: abort}}\n"
            f"      notify: [{{webhook: '{hook.url}/notify'}}]"
        )
        url, job = _flow(dagster_instance, extra)
        run_id = start(job, dagster_instance, url)
        notices = [r.json() for r in hook.calls("POST", "/notify")]
        assert notices[0]["event"] == "checkpoint.requested"
        assert notices[0]["decide_url"].endswith(notices[0]["approval_id"])
        approval = pending(url, run_id)
        store = RunStore(url)
        approvals = Approvals(store)
        # Escalate through the sensor, as the daemon would.
        approvals_store_time = approval.expires_at
        with store.session() as s:
            from baton.store.approvals import ApprovalsRepository

            ApprovalsRepository(s).update_pending(
                approval.id, expires_at=utcnow() - timedelta(seconds=1)
            )
        _timeout_tick(dagster_instance, url)
        escalated = approvals.get(approval.id)
        assert escalated.status == "pending"
        assert escalated.escalations == 1
        assert escalated.policy["approvers"] == ["chiefs"]
        assert escalated.expires_at > approvals_store_time
        assert [r.json()["event"] for r in hook.calls("POST", "/notify")][-1] == (
            "checkpoint.escalated"
        )
        with pytest.raises(ApprovalError, match="not among the approvers"):
            approvals.decide(approval.id, user="ann", decision="continue")
        approvals.decide(approval.id, user="cy", decision="continue")
        assert len(tick(dagster_instance, url, job)) == 1
        types = [e.type for e in store.run_detail(run_id).events]
        assert "checkpoint.escalated" in types


def test_two_approvers_required(dagster_instance: DagsterInstance) -> None:
    url, job = _flow(dagster_instance, "      required_approvals: 2")
    run_id = start(job, dagster_instance, url)
    approval = pending(url, run_id)
    approvals = Approvals(RunStore(url))
    first = approvals.decide(approval.id, user="ann", decision="continue", comment="ok")
    assert first.status == "pending"
    assert tick(dagster_instance, url, job) == []
    with pytest.raises(ApprovalError, match="already voted"):
        approvals.decide(approval.id, user="ann", decision="continue")
    second = approvals.decide(approval.id, user="bob", decision="continue")
    assert (second.status, second.decided_by) == ("decided", "ann, bob")
    assert len(tick(dagster_instance, url, job)) == 1


def test_self_approval_is_refused_unless_allowed(dagster_instance: DagsterInstance) -> None:
    url, job = _flow(dagster_instance, "")
    run_id = start(job, dagster_instance, url)
    with RunStore(url).session() as s:
        from baton.db.models import OrchestrationRun

        s.get(OrchestrationRun, run_id).created_by = "ann"  # type: ignore[union-attr]
    approval = pending(url, run_id)
    with pytest.raises(ApprovalError, match="launched this run and may not approve it"):
        Approvals(RunStore(url)).decide(approval.id, user="ann", decision="continue")
    Approvals(RunStore(url)).decide(approval.id, user="bob", decision="continue")

    url2, job2 = _flow(dagster_instance, "      allow_self_approval: true")
    run2 = start(job2, dagster_instance, url2)
    with RunStore(url2).session() as s:
        from baton.db.models import OrchestrationRun

        s.get(OrchestrationRun, run2).created_by = "ann"  # type: ignore[union-attr]
    decided = Approvals(RunStore(url2)).decide(
        pending(url2, run2).id, user="ann", decision="continue"
    )
    assert decided.status == "decided"


@pytest.mark.parametrize("status", ["decided", "resuming", "resumed", "expired", "cancelled"])
def test_no_decision_is_accepted_once_an_approval_left_pending(
    dagster_instance: DagsterInstance, status: str
) -> None:
    url, job = _flow(dagster_instance, "")
    run_id = start(job, dagster_instance, url)
    approval = pending(url, run_id)
    with RunStore(url).session() as s:
        from baton.db.models import HumanApproval

        s.get(HumanApproval, approval.id).status = status  # type: ignore[union-attr]
    for decision in ("continue", "retry", "abort"):
        with pytest.raises(ApprovalError, match=f"already {status}") as info:
            Approvals(RunStore(url)).decide(approval.id, user="ann", decision=decision)
        assert info.value.code == "conflict"


def test_a_decision_not_offered_is_refused(dagster_instance: DagsterInstance) -> None:
    url, job = _flow(dagster_instance, "      decisions: [continue, abort]")
    run_id = start(job, dagster_instance, url)
    with pytest.raises(ApprovalError, match="'retry' is not offered") as info:
        Approvals(RunStore(url)).decide(pending(url, run_id).id, user="ann", decision="retry")
    assert info.value.field == "decision"
