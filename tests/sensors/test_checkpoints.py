"""Checkpoints end to end on a real instance: pause, decide, resume through the approval
sensor's own logic, on SQLite and on Postgres."""

from __future__ import annotations

import uuid

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from baton.approvals import ApprovalError, Approvals
from baton.store.service import RunStore
from tests.checkpoint_helpers import launch, pending, start, tick, users
from tests.helpers import CALLS, ScriptedAgent, compile_text

REVIEW = """
slug: review-flow
name: Review flow
version: 1
inputs:
  topic: {type: string, default: dagster}
steps:
  - id: draft
    agent: echo
    with: {title: "{{ inputs.topic }}", words: 100}
  - id: review
    checkpoint:
      prompt: "Publish {{ steps.draft.output.title }}?"
      show: "{{ steps.draft.output }}"
      modifiable: {title: string, words: integer}
      approvers: [editors]
  - id: publish
    agent: echo
    with:
      post: "{{ steps.review.output.value }}"
      by: "{{ steps.review.output.decided_by }}"
outputs:
  post: "{{ steps.publish.output.post }}"
  by: "{{ steps.publish.output.by }}"
"""


@pytest.fixture
def flow(dagster_instance: DagsterInstance):  # type: ignore[no-untyped-def]
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    users(url, ("ann", ["editors"]), ("bob", ["editors"]), ("eve", ["sales"]))
    _, job = compile_text(REVIEW, url)
    return dagster_instance, url, job


def _agent(key: str) -> ScriptedAgent:
    return ScriptedAgent(key=key)


def test_pause_holds_nothing_and_continue_with_modifications_completes(flow) -> None:  # type: ignore[no-untyped-def]
    instance, url, job = flow
    key = uuid.uuid4().hex
    run_id = start(job, instance, url, agent=_agent(key))
    store = RunStore(url)
    assert store.get_run(run_id).status == "awaiting_approval"
    assert all(r.status == DagsterRunStatus.SUCCESS for r in instance.get_runs())
    approval = pending(url, run_id)
    assert approval.prompt == "Publish dagster?"
    assert tick(instance, url, job) == []  # nothing decided yet
    Approvals(store).decide(
        approval.id,
        user="ann",
        decision="continue",
        modifications={"title": "Dagster approvals"},
        comment="better title",
    )
    [request] = tick(instance, url, job)
    assert request.run_key == f"baton-approval-{approval.id}"
    # A tick repeated before the run exists (a crash after the claim) asks again with the same
    # run_key, which the daemon dedupes; once the run exists, it asks for nothing.
    assert [r.run_key for r in tick(instance, url, job)] == [request.run_key]
    result = launch(job, instance, url, request, resources={"agent_echo": _agent(key)})
    assert result.success
    assert tick(instance, url, job) == []
    run = store.get_run(run_id)
    assert run.status == "completed"
    assert run.outputs == {"post": {"title": "Dagster approvals", "words": 100}, "by": "ann"}
    assert CALLS[key] == {"draft": 1, "publish": 1}  # draft came from the store
    decided = Approvals(store).get(approval.id)
    assert decided.status == "resumed"
    assert decided.diff == {"title": {"from": "dagster", "to": "Dagster approvals"}}
    types = [e.type for e in store.run_detail(run_id).events]
    assert "checkpoint.requested" in types and "checkpoint.decided" in types
    tagged = instance.get_run_by_id(result.run_id)
    assert tagged is not None and tagged.tags["baton/run_id"] == str(run_id)


def test_retry_with_modifications_twice_then_continue(flow) -> None:  # type: ignore[no-untyped-def]
    instance, url, job = flow
    key = uuid.uuid4().hex
    run_id = start(job, instance, url, agent=_agent(key))
    approvals = Approvals(RunStore(url))
    previous = None
    for words in (200, 300):
        approval = pending(url, run_id)
        assert approval.previous_approval_id == previous
        approvals.decide(approval.id, user="ann", decision="retry", modifications={"words": words})
        [request] = tick(instance, url, job)
        assert launch(job, instance, url, request, resources={"agent_echo": _agent(key)}).success
        assert RunStore(url).get_run(run_id).status == "awaiting_approval"
        assert pending(url, run_id).show["words"] == words  # draft re-ran with the change
        previous = approval.id
    final = pending(url, run_id)
    approvals.decide(final.id, user="bob", decision="continue")
    [request] = tick(instance, url, job)
    assert launch(job, instance, url, request, resources={"agent_echo": _agent(key)}).success
    run = RunStore(url).get_run(run_id)
    assert run.status == "completed"
    assert run.outputs["post"]["words"] == 300
    assert CALLS[key] == {"draft": 3, "publish": 1}


def test_abort_ends_the_run_and_launches_nothing(flow) -> None:  # type: ignore[no-untyped-def]
    instance, url, job = flow
    run_id = start(job, instance, url, agent=_agent(uuid.uuid4().hex))
    approval = pending(url, run_id)
    Approvals(RunStore(url)).decide(approval.id, user="ann", decision="abort", comment="no")
    assert tick(instance, url, job) == []
    run = RunStore(url).get_run(run_id)
    assert run.status == "aborted"
    assert "aborted at checkpoint 'review' by ann" in run.error["message"]


def test_decisions_are_checked_and_recorded_once(flow) -> None:  # type: ignore[no-untyped-def]
    instance, url, job = flow
    run_id = start(job, instance, url, agent=_agent(uuid.uuid4().hex))
    approval = pending(url, run_id)
    approvals = Approvals(RunStore(url))
    with pytest.raises(ApprovalError, match="not among the approvers") as info:
        approvals.decide(approval.id, user="eve", decision="continue")
    assert info.value.code == "forbidden"
    with pytest.raises(ApprovalError, match="not a user"):
        approvals.decide(approval.id, user="mallory", decision="continue")
    with pytest.raises(ApprovalError, match="'body' is not modifiable") as info:
        approvals.decide(approval.id, user="ann", decision="continue", modifications={"body": "x"})
    assert info.value.field == "modifications.body"
    with pytest.raises(ApprovalError, match="must be of type integer"):
        approvals.decide(
            approval.id, user="ann", decision="continue", modifications={"words": "many"}
        )
    approvals.decide(approval.id, user="ann", decision="continue")
    with pytest.raises(ApprovalError, match="already decided") as info:
        approvals.decide(approval.id, user="bob", decision="abort")
    assert info.value.code == "conflict"
    assert len(tick(instance, url, job)) == 1
