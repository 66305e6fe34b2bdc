"""What the approvals page shows of an approval, read in one session and detached from it."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from baton.api.auth import Principal
from baton.api.ui.forms import FieldInput, field_inputs
from baton.approvals import Approvals
from baton.db.engine import session_scope
from baton.db.models import ApprovalVote, HumanApproval, OrchestrationRun
from baton.lineage import chain_of, chain_text, chains_of, tree_run_ids
from baton.store.service import RunStore
from orchestration_defs.language.values import sanitized as clean

MAX_LISTED = 200


@dataclass(frozen=True)
class Vote:
    """One approver's recorded vote."""

    user: str
    decision: str
    comment: str | None
    at: datetime


@dataclass(frozen=True)
class ApprovalView:
    """An approval with its run, its votes and its form fields."""

    id: uuid.UUID
    run_id: uuid.UUID
    orchestration: str
    step_id: str
    status: str
    prompt: str
    show: Any
    decisions: list[str]
    approvers: list[str]
    required_approvals: int
    requested_at: datetime
    requested_by: str | None
    expires_at: datetime | None
    decision: str | None
    decided_by: str | None
    decided_at: datetime | None
    comment: str | None
    diff: dict[str, Any] | None
    dagster_url: str | None
    votes: list[Vote]
    fields: list[FieldInput]
    # Why the person looking at the page may not decide it (``for_viewer``); None: they may.
    blocked: str | None = None
    # Why a decided approval's run has not resumed yet (its segment could not be launched).
    launch_error: str | None = None
    # Where its run sits in a tree of runs ("in kpi-tracking (child 2 of periods) of ..."),
    # empty for a root run, and that tree's top run.
    where: str = ""
    root_run_id: uuid.UUID | None = None

    @property
    def pending(self) -> bool:
        return self.status == "pending"


def _view(
    approval: HumanApproval,
    run: OrchestrationRun,
    votes: Sequence[ApprovalVote],
    dagster_ui: str,
    chain: Sequence[dict[str, Any]],
) -> ApprovalView:
    policy = approval.policy or {}
    dagster_run = approval.dagster_run_id or run.last_dagster_run_id
    # A value stored before the edge refused bad text must not break the page (see views.py).
    show, diff = clean(approval.show), clean(approval.diff)
    return ApprovalView(
        id=approval.id,
        run_id=run.id,
        orchestration=run.orchestration,
        step_id=approval.step_id,
        status=approval.status,
        prompt=approval.prompt,
        show=show,
        decisions=list(policy.get("decisions") or []),
        approvers=list(policy.get("approvers") or []),
        required_approvals=int(policy.get("required_approvals", 1)),
        requested_at=approval.requested_at,
        requested_by=approval.requested_by,
        expires_at=approval.expires_at,
        decision=approval.decision,
        decided_by=approval.decided_by,
        decided_at=approval.decided_at,
        comment=approval.comment,
        diff=diff,
        dagster_url=f"{dagster_ui.rstrip('/')}/runs/{dagster_run}" if dagster_run else None,
        votes=[Vote(v.user_name, v.decision, v.comment, v.created_at) for v in votes],
        fields=field_inputs(policy.get("modifiable") or {}, show),
        launch_error=approval.launch_error,
        where=clean(chain_text(chain)),
        root_run_id=uuid.UUID(chain[0]["run_id"]) if chain else run.id,
    )


def _votes(s: Session, approval_id: uuid.UUID) -> Sequence[ApprovalVote]:
    return s.scalars(
        select(ApprovalVote)
        .where(ApprovalVote.approval_id == approval_id)
        .order_by(ApprovalVote.created_at, ApprovalVote.id)
    ).all()


def pending(
    url: str, organization: str, dagster_ui: str, root: uuid.UUID | None = None
) -> list[ApprovalView]:
    """The organization's pending approvals, oldest request first; with ``root`` only those
    of that run and the runs below it."""
    with session_scope(url) as s:
        query = (
            select(HumanApproval, OrchestrationRun)
            .join(OrchestrationRun, OrchestrationRun.id == HumanApproval.run_id)
            .where(
                HumanApproval.organization == organization,
                HumanApproval.status == "pending",
                OrchestrationRun.deleted_at.is_(None),
            )
        )
        if root is not None:
            query = query.where(HumanApproval.run_id.in_(tree_run_ids(s, root)))
        rows = s.execute(query.order_by(HumanApproval.requested_at).limit(MAX_LISTED)).all()
        chains = chains_of(s, list({a.run_id for a, _ in rows}))
        return [_view(a, r, _votes(s, a.id), dagster_ui, chains[a.run_id]) for a, r in rows]


def one(
    url: str, organization: str, approval_id: uuid.UUID, dagster_ui: str
) -> ApprovalView | None:
    """One approval of the organization; None if absent or another organization's."""
    with session_scope(url) as s:
        row = s.execute(
            select(HumanApproval, OrchestrationRun)
            .join(OrchestrationRun, OrchestrationRun.id == HumanApproval.run_id)
            .where(
                HumanApproval.id == approval_id,
                HumanApproval.organization == organization,
                OrchestrationRun.deleted_at.is_(None),
            )
        ).first()
        if row is None:
            return None
        chain = chain_of(s, row[0].run_id)
        return _view(row[0], row[1], _votes(s, row[0].id), dagster_ui, chain)


def role_refusal(principal: Principal) -> str | None:
    """Why this token may not decide anything, whatever the approval; None if it may."""
    if principal.can("approver"):
        return None
    return (
        f"your token's role is {principal.role}: you can review but not decide "
        "(deciding needs an approver or admin token)"
    )


def for_viewer(url: str, shown: Sequence[ApprovalView], viewer: Principal) -> list[ApprovalView]:
    """``shown`` with ``blocked`` set for ``viewer``, by the approvals service's own rules.

    Only pending approvals are asked about: a decided one shows its status instead of a form.
    """
    refusal = role_refusal(viewer)
    asked = [view.id for view in shown if view.pending and refusal is None]
    reasons = Approvals(RunStore(url)).why_not_each(asked, viewer.user_name) if asked else {}
    return [
        dataclasses.replace(view, blocked=refusal or reasons.get(view.id)) if view.pending else view
        for view in shown
    ]
