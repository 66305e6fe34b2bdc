"""The decision form is offered only to those whose decision would count; others read why.

One run paused at a two-approver checkpoint, launched by ann, with one vote in: five people
look at it and each sees either the form or the reason the approvals service gives.
"""

from __future__ import annotations

import uuid

import pytest
from dagster import DagsterInstance

from agent_resources.resources import EchoAgentResource
from baton.approvals import Approvals
from baton.store.service import RunStore
from orchestration_defs.compiler.resources import BatonStoreResource
from tests.baton.api.ui.support import Deployment, _token
from tests.baton.api.ui.test_pages import decide, signed_in
from tests.checkpoint_helpers import pending, users
from tests.helpers import compile_text

TWO = """
slug: two-approvers
name: Two approvers
version: 1
steps:
  - id: draft
    agent: echo
    with: {title: "Quarterly notes"}
  - id: review
    checkpoint:
      prompt: "Ship the quarterly notes?"
      show: "{{ steps.draft.output }}"
      approvers: [editors]
      required_approvals: 2
"""


def _launched_by(instance: DagsterInstance, url: str, user: str) -> uuid.UUID:
    """A run of TWO launched by ``user`` (the UI's launcher tag); it waits at the checkpoint."""
    _, job = compile_text(TWO, url)
    result = job.execute_in_process(
        run_config={"inputs": {}, "baton_run_id": ""},
        instance=instance,
        tags={"dagster/user": user},
        resources={
            "baton_store": BatonStoreResource(database_url=url),
            "agent_echo": EchoAgentResource(slug="echo"),
        },
        raise_on_error=False,
    )
    assert result.success
    [run] = RunStore(url).list_runs(orchestration="two-approvers")
    return run.id


@pytest.fixture
def waiting(deployment: Deployment) -> uuid.UUID:
    """The approval of a run ann launched, with zoe's continue vote already in (1 of 2)."""
    url = deployment.url
    users(url, ("zoe", ["editors"]), ("max", ["editors"]))
    deployment.tokens["zoe"] = _token(url, "global", "zoe", "approver")
    deployment.tokens["max"] = _token(url, "global", "max", "admin")
    deployment.tokens["oscar"] = _token(url, "global", "ann", "operator")
    approval = pending(url, _launched_by(deployment.instance, url, "ann"))
    Approvals(RunStore(url)).decide(approval.id, user="zoe", decision="continue")
    return approval.id


REASONS = {
    "ann": "&#39;ann&#39; launched this run and may not approve it",
    "zoe": "zoe has already voted on this approval",
    "eve": "&#39;eve&#39; is not among the approvers of this checkpoint (editors)",
    "vic": "your token&#39;s role is viewer: you can review but not decide",
    "oscar": "your token&#39;s role is operator: you can review but not decide",
}


def _card(html: str, approval_id: uuid.UUID) -> str:
    """The part of a page about one approval."""
    start = html.index(f'id="approval-{approval_id}"')
    end = html.find("</article>", start)
    return html[start:end]


@pytest.mark.parametrize("who", sorted(REASONS))
def test_who_may_not_decide_sees_why_and_no_form(
    deployment: Deployment, waiting: uuid.UUID, who: str
) -> None:
    c = signed_in(deployment, who)
    for path in ("/ui/approvals", f"/ui/approvals/{waiting}"):
        card = _card(c.get(path).text, waiting)
        assert 'class="decide"' not in card, (who, path)
        assert f'id="blocked-{waiting}"' in card
        assert f"You cannot decide this approval: {REASONS[who]}" in card


def test_who_may_decide_gets_the_form_and_it_counts(
    deployment: Deployment, waiting: uuid.UUID
) -> None:
    c = signed_in(deployment, "max")
    card = _card(c.get(f"/ui/approvals/{waiting}").text, waiting)
    assert 'class="decide"' in card and "You cannot decide" not in card
    assert decide(c, waiting, decision="continue").status_code == 303
    votes = Approvals(RunStore(deployment.url)).votes(waiting)
    assert [v.user_name for v in votes] == ["zoe", "max"]


def test_the_form_is_per_approval_on_the_list(deployment: Deployment, waiting: uuid.UUID) -> None:
    """ann launched the two-approver run but not the review-flow one: one form, one reason."""
    other = pending(deployment.url, deployment.run_id).id
    page = signed_in(deployment, "ann").get("/ui/approvals").text
    assert 'class="decide"' in _card(page, other)
    assert 'class="decide"' not in _card(page, waiting)


def test_a_refused_post_still_explains(deployment: Deployment, waiting: uuid.UUID) -> None:
    """The page only hides the form: the service still refuses a hand-made POST."""
    refused = decide(signed_in(deployment, "zoe"), waiting, decision="continue")
    assert refused.status_code == 409
    assert "zoe has already voted on this approval" in refused.text


def test_an_abort_notice_does_not_promise_a_resume(deployment: Deployment) -> None:
    approval = pending(deployment.url, deployment.run_id)
    c = signed_in(deployment, "ann")
    done = decide(c, approval.id, decision="abort")
    assert done.status_code == 303
    notice = c.get(done.headers["location"]).text
    assert "Decided: <strong>abort</strong>" in notice
    assert "The run is aborted: nothing after this checkpoint runs." in notice
    assert "resumes" not in notice


# the service's read-only check, directly ---------------------------------------------------


def test_why_not_is_none_for_an_approver_and_reads_nothing_into_the_store(
    deployment: Deployment,
) -> None:
    approval = pending(deployment.url, deployment.run_id)
    approvals = Approvals(RunStore(deployment.url))
    assert approvals.why_not(approval.id, "ann") is None
    assert approvals.votes(approval.id) == []
    assert approvals.get(approval.id).status == "pending"


def test_why_not_names_an_unknown_user_a_decided_approval_and_a_missing_one(
    deployment: Deployment,
) -> None:
    approval = pending(deployment.url, deployment.run_id)
    approvals = Approvals(RunStore(deployment.url))
    assert approvals.why_not(approval.id, "olga") == (
        "'olga' is not a user of organization 'global'"
    )
    approvals.decide(approval.id, user="ann", decision="abort")
    assert approvals.why_not(approval.id, "ann") == (
        "the approval is no longer pending (it is decided)"
    )
    missing = uuid.uuid4()
    assert approvals.why_not(missing, "ann") == f"no approval {missing}"


def test_why_not_each_answers_per_approval_in_one_call(
    deployment: Deployment, waiting: uuid.UUID
) -> None:
    other = pending(deployment.url, deployment.run_id).id
    reasons = Approvals(RunStore(deployment.url)).why_not_each([other, waiting], "ann")
    assert reasons == {other: None, waiting: "'ann' launched this run and may not approve it"}
