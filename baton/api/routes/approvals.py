"""Approvals: list and read them, and decide one through the approvals service."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request

from baton.api import views
from baton.api.auth import Principal, require
from baton.api.dagster import DagsterGateway
from baton.api.deps import get_dagster, get_settings_of, get_store, limiter
from baton.api.errors import ApiError, error_responses, not_found
from baton.api.pagination import MAX_LIMIT, CursorParam
from baton.api.queries import approvals_page, scoped_approval
from baton.api.schemas import ApprovalPage, ApprovalView, DecisionRequest
from baton.approvals import ApprovalError, Approvals
from baton.edge import check_decision
from baton.lifecycle import Lifecycle
from baton.lineage import chain_of, chains_of, tree_run_ids
from baton.store.approvals import ApprovalsRepository
from baton.store.service import RunStore
from orchestration_defs.language.values import ValueProblem

router = APIRouter(prefix="/api/v1/approvals", tags=["approvals"])
ApprovalStatus = Literal["pending", "decided", "resuming", "resumed", "expired", "cancelled"]
# The service's error codes as HTTP statuses.
STATUS_OF = {"not_found": 404, "conflict": 409, "forbidden": 403, "invalid": 422}


@router.get("", response_model=ApprovalPage, responses=error_responses(401, 403, 422))
def list_approvals(
    principal: Principal = Depends(require("viewer")),  # noqa: B008
    store: RunStore = Depends(get_store),  # noqa: B008
    status: Annotated[ApprovalStatus | None, Query(description="Default: all.")] = None,
    run_id: Annotated[
        uuid.UUID | None,
        Query(description="This run and every run below it (its child runs, at any depth)."),
    ] = None,
    root_run_id: Annotated[
        uuid.UUID | None, Query(description="The same as run_id (the name the runs list uses).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: CursorParam = None,
) -> ApprovalPage:
    """Approvals of the caller's organization, oldest request first, each with the chain of
    runs above it; with ``run_id`` only those of that run's tree."""
    top = _tree_filter(run_id, root_run_id)
    with store.session() as s:
        ids = tree_run_ids(s, top) if top is not None else None
        rows, next_cursor = approvals_page(
            s, principal.organization, status, limit=limit, cursor=cursor, run_ids=ids
        )
        chains = chains_of(s, list({a.run_id for a in rows}))
        items = [views.approval(a, chain=chains[a.run_id]) for a in rows]
        return ApprovalPage(items=items, next_cursor=next_cursor)


def _tree_filter(run_id: uuid.UUID | None, root_run_id: uuid.UUID | None) -> uuid.UUID | None:
    if run_id is not None and root_run_id is not None and run_id != root_run_id:
        raise ApiError(
            422, "invalid", "give run_id or root_run_id (they mean the same)", field="root_run_id"
        )
    return run_id or root_run_id


@router.get("/{approval_id}", response_model=ApprovalView, responses=error_responses(401, 403, 404))
def get_approval(
    approval_id: uuid.UUID,
    principal: Principal = Depends(require("viewer")),  # noqa: B008
    store: RunStore = Depends(get_store),  # noqa: B008
) -> ApprovalView:
    """One approval with its prompt, content, rules, decision and votes."""
    with store.session() as s:
        row = scoped_approval(s, principal.organization, approval_id)
        if row is None:
            raise not_found(f"approval {approval_id}")
        votes = ApprovalsRepository(s).votes(approval_id)
        return views.approval(row, votes, chain_of(s, row.run_id))


def decide_guard(
    request: Request,
    principal: Principal = Depends(require("approver")),  # noqa: B008
) -> Principal:
    """An approver (or admin) within the decide rate limit."""
    limiter(request, "decide").check(principal.token_id)
    return principal


@router.post(
    "/{approval_id}/decision",
    response_model=ApprovalView,
    responses=error_responses(401, 403, 404, 409, 422, 429),
)
def decide(
    request: Request,
    approval_id: uuid.UUID,
    body: DecisionRequest,
    background: BackgroundTasks,
    principal: Principal = Depends(decide_guard),  # noqa: B008
    store: RunStore = Depends(get_store),  # noqa: B008
    dagster: DagsterGateway = Depends(get_dagster),  # noqa: B008
) -> ApprovalView:
    """Decide as the token's user: continue (with modifications), retry or abort.

    The checkpoint's rules apply: the user must be among its approvers (by name or group),
    may not approve a run they launched unless allowed, and votes until enough agree.
    Once decided, this process launches the run's next segment right after answering (the
    approval sensor takes over if that launch fails). A second decision answers 409.
    Changes are held to the launch inputs' limits (422 names the field; nothing is stored).
    """
    try:
        check_decision(get_settings_of(request), body.modifications, body.comment)
    except ValueProblem as exc:
        raise ApiError(422, "invalid", str(exc), field=exc.field) from exc
    with store.session() as s:
        if scoped_approval(s, principal.organization, approval_id) is None:
            raise not_found(f"approval {approval_id}")
    lifecycle = Lifecycle(store, dagster, via="api")
    approvals = Approvals(store)
    try:
        row = lifecycle.decide(
            approval_id,
            user=principal.user_name,
            decision=body.decision,
            modifications=body.modifications,
            comment=body.comment,
        )
    except ApprovalError as exc:
        raise ApiError(STATUS_OF.get(exc.code, 409), exc.code, str(exc), field=exc.field) from exc
    if row.status == "decided":
        background.add_task(lifecycle.resume, approval_id)
    with store.session() as s:
        chain = chain_of(s, row.run_id)
    return views.approval(row, approvals.votes(approval_id), chain)
