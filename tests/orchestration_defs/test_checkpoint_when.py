"""``when`` on a checkpoint step: false skips the approval and what depends only on it."""

from __future__ import annotations

import uuid

from dagster import DagsterInstance

from baton.approvals import Approvals
from baton.store.service import RunStore
from tests.helpers import compile_text, execute

GATED = """
slug: gated-review
name: Gated review
version: 1
inputs:
  amount: {type: integer, required: true}
steps:
  - id: draft
    agent: echo
    with: {amount: "{{ inputs.amount }}"}
  - id: review
    when: "{{ steps.draft.output.amount > 1000 }}"
    checkpoint:
      prompt: "Pay {{ steps.draft.output.amount }}?"
      show: "{{ steps.draft.output }}"
  - id: pay
    agent: echo
    with: {approved: "{{ steps.review.output.value }}"}
  - id: log
    agent: echo
    with: {amount: "{{ steps.draft.output.amount }}", review: "{{ steps.review.status }}"}
outputs:
  log: "{{ steps.log.output }}"
"""


def _only_run(url: str) -> uuid.UUID:
    [run] = RunStore(url).list_runs()
    return run.id


def test_a_false_when_skips_the_checkpoint_and_what_depends_only_on_it(
    dagster_instance: DagsterInstance,
) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    _, job = compile_text(GATED, url)
    assert execute(job, dagster_instance, url, inputs={"amount": 10}).success
    run_id = _only_run(url)
    detail = RunStore(url).run_detail(run_id)
    assert {s.step_id: s.status for s in detail.steps} == {
        "draft": "completed",
        "review": "skipped",
        "pay": "skipped",
        "log": "completed",
    }
    assert detail.run.status == "completed"
    assert detail.run.outputs == {"log": {"amount": 10, "review": "skipped"}}
    assert Approvals(RunStore(url)).find(run_id=run_id) == []


def test_a_true_when_asks_for_the_approval(dagster_instance: DagsterInstance) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    _, job = compile_text(GATED, url)
    assert execute(job, dagster_instance, url, inputs={"amount": 5000}).success
    run_id = _only_run(url)
    assert RunStore(url).get_run(run_id).status == "awaiting_approval"
    [approval] = Approvals(RunStore(url)).find(run_id=run_id, status="pending")
    assert approval.prompt == "Pay 5000?"
