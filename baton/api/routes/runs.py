"""Orchestration runs: launch, list, detail, abort, retry or skip a failed step, and
compensate a failed or aborted run."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request

from baton.api import views
from baton.api.auth import Principal, require
from baton.api.dagster import DagsterGateway
from baton.api.deps import get_dagster, get_settings_of, get_store, limiter
from baton.api.errors import ApiError, error_responses, not_found
from baton.api.pagination import MAX_LIMIT, CursorParam
from baton.api.queries import RunFilters, runs_page, scoped_run
from baton.api.schemas import (
    AbortRequest,
    AuditLog,
    CompensateRequest,
    CompensationStarted,
    Launched,
    LaunchRequest,
    RetryRequest,
    RunDetail,
    RunPage,
    RunSummary,
    SkipRequest,
    StepAction,
)
from baton.db.models import OrchestrationRun
from baton.edge import check_reason, input_limits
from baton.lifecycle import Lifecycle, LifecycleError, Prepared
from baton.lineage import chain_of
from baton.slugs import UnknownSlug, resolve_slug
from baton.store.approvals import ApprovalsRepository
from baton.store.audit import AuditRepository
from baton.store.compensations import CompensationsRepository
from baton.store.definitions import DefinitionsRepository
from baton.store.runs import RunsRepository
from baton.store.service import RunStore
from baton.store.steps import StepsRepository
from orchestration_defs.language.inputs import InputError, resolve_inputs
from orchestration_defs.language.models import OrchestrationSpec
from orchestration_defs.language.values import ValueLimits, ValueProblem

router = APIRouter(prefix="/api/v1/runs", tags=["runs"])
log = logging.getLogger(__name__)
RunStatus = Literal[
    "pending",
    "running",
    "awaiting_approval",
    "awaiting_children",
    "completed",
    "failed",
    "aborted",
]


def launch_guard(
    request: Request,
    principal: Principal = Depends(require("operator")),  # noqa: B008
) -> Principal:
    """An operator (or admin) within the launch rate limit."""
    limiter(request, "launch").check(principal.token_id)
    return principal


@router.post(
    "",
    status_code=202,
    response_model=Launched,
    responses=error_responses(401, 403, 422, 429),
)
def launch_run(
    request: Request,
    body: LaunchRequest,
    background: BackgroundTasks,
    principal: Principal = Depends(launch_guard),  # noqa: B008
    store: RunStore = Depends(get_store),  # noqa: B008
    dagster: DagsterGateway = Depends(get_dagster),  # noqa: B008
) -> Launched:
    """Launch the newest version of an orchestration as an ordinary Dagster run.

    Answers 202 once the run is recorded; the Dagster run starts right after (a failed start
    marks the run failed with the reason). Inputs are checked first: 422 names the input
    (or the place inside it, ``inputs.topic[2].name``), and nothing is stored.
    """
    with store.session() as s:
        repo = DefinitionsRepository(s)
        try:  # the Dagster job name (content_review) names its orchestration too
            slug = resolve_slug(body.orchestration, repo.slugs(principal.organization))
        except UnknownSlug as exc:
            raise ApiError(
                422, "invalid", f"orchestration: {exc.message}", field="orchestration"
            ) from exc
        definition = repo.latest(principal.organization, slug)
    if definition is None:
        raise ApiError(
            422,
            "invalid",
            f"orchestration: no orchestration '{body.orchestration}' in your organization",
            field="orchestration",
        )
    spec = OrchestrationSpec.model_validate(definition.spec)
    inputs = _checked_inputs(spec, body.inputs, input_limits(get_settings_of(request)))
    lifecycle = Lifecycle(store, dagster, via="api")
    run_id = lifecycle.start(
        organization=definition.organization,
        slug=definition.slug,
        version=definition.version,
        inputs=inputs,
        user=principal.user_name,
    )
    background.add_task(lifecycle.launch_new, run_id, user=principal.user_name)
    return Launched(
        run_id=str(run_id),
        orchestration=definition.slug,
        version=definition.version,
        status="pending",
    )


def _checked_inputs(
    spec: OrchestrationSpec, given: dict[str, Any], limits: ValueLimits
) -> dict[str, Any]:
    try:
        return resolve_inputs(spec.inputs, given, limits)
    except InputError as exc:
        raise ApiError(
            422, "invalid", exc.problems[0], field=exc.fields[0], details=exc.problems
        ) from exc


@router.get("", response_model=RunPage, responses=error_responses(401, 403, 422))
def list_runs(
    principal: Principal = Depends(require("viewer")),  # noqa: B008
    store: RunStore = Depends(get_store),  # noqa: B008
    status: RunStatus | None = None,
    orchestration: Annotated[str | None, Query(max_length=100)] = None,
    since: Annotated[datetime | None, Query(description="Created at or after.")] = None,
    until: Annotated[datetime | None, Query(description="Created before.")] = None,
    parent: Annotated[uuid.UUID | None, Query(description="Sub-runs of this run.")] = None,
    root_run_id: Annotated[
        uuid.UUID | None, Query(description="This root run and every run below it.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: CursorParam = None,
) -> RunPage:
    """Runs of the caller's organization, newest first, a page at a time."""
    filters = RunFilters(status, orchestration, since, until, parent, root_run_id)
    with store.session() as s:
        rows, next_cursor = runs_page(
            s, principal.organization, filters, limit=limit, cursor=cursor
        )
        return RunPage(items=[views.run_summary(r) for r in rows], next_cursor=next_cursor)


@router.get("/{run_id}", response_model=RunDetail, responses=error_responses(401, 403, 404))
def get_run(
    run_id: uuid.UUID,
    principal: Principal = Depends(require("viewer")),  # noqa: B008
    store: RunStore = Depends(get_store),  # noqa: B008
    dagster: DagsterGateway = Depends(get_dagster),  # noqa: B008
) -> RunDetail:
    """One run with its steps, approvals, deliverables, sub-runs, Dagster runs and, once
    planned, its compensation (steps in the order they run)."""
    with store.session() as s:
        run = _run_or_404(s, principal, run_id)
        summary = views.run_summary(run)
        steps = [views.step(r) for r in StepsRepository(s).list(run_id)]
        repo = ApprovalsRepository(s)
        chain = chain_of(s, run_id)
        approvals = [views.approval(a, repo.votes(a.id), chain) for a in repo.list(run_id=run_id)]
        children = [str(c.id) for c in RunsRepository(s).children(run_id)]
        last_dagster = run.last_dagster_run_id
        undo = views.compensation(run, CompensationsRepository(s).rows(run_id))
    return RunDetail(
        **summary.model_dump(),
        steps=steps,
        approvals=approvals,
        deliverables=[views.deliverable(d) for d in store.deliverables(run_id)],
        children=children,
        last_dagster_run_id=last_dagster,
        segments=_segments(dagster, run_id),
        compensation=undo,
    )


def _segments(dagster: DagsterGateway, run_id: uuid.UUID) -> list[Any]:
    try:
        return dagster.segments(str(run_id))
    except Exception as exc:  # the run's own data is still worth answering with
        log.warning("could not read Dagster runs of %s: %s", run_id, type(exc).__name__)
        return []


def _run_or_404(s: Any, principal: Principal, run_id: uuid.UUID) -> OrchestrationRun:
    run = scoped_run(s, principal.organization, run_id)
    if run is None:
        raise not_found(f"orchestration run {run_id}")
    return run


@router.get("/{run_id}/audit", response_model=AuditLog, responses=error_responses(401, 403, 404))
def run_audit(
    run_id: uuid.UUID,
    principal: Principal = Depends(require("viewer")),  # noqa: B008
    store: RunStore = Depends(get_store),  # noqa: B008
) -> AuditLog:
    """The operator actions asked of this run (retry, skip, abort, compensate), accepted or refused,
    oldest first: who, through what, why, the states they met and how it went."""
    with store.session() as s:
        _run_or_404(s, principal, run_id)
        return AuditLog(items=[views.audit_entry(a) for a in AuditRepository(s).list(run_id)])


@router.post(
    "/{run_id}/abort",
    response_model=RunSummary,
    responses=error_responses(401, 403, 404, 409, 422),
)
def abort_run(
    run_id: uuid.UUID,
    body: AbortRequest | None = None,
    principal: Principal = Depends(require("operator")),  # noqa: B008
    store: RunStore = Depends(get_store),  # noqa: B008
    dagster: DagsterGateway = Depends(get_dagster),  # noqa: B008
) -> RunSummary:
    """Abort a run that has not ended: open approvals are cancelled, running steps
    `cancelled`, its child runs aborted, its Dagster run canceled. The body is optional.

    409 names the run's status when it already ended (or ended meanwhile: an abort racing a
    decision or another abort has one winner). Recorded in the audit log either way.
    """
    reason = _reason(body.reason if body else None)
    lifecycle = Lifecycle(store, dagster, via="api")
    try:
        run = lifecycle.abort(
            run_id, by=principal.user_name, organization=principal.organization, reason=reason
        )
    except LifecycleError as exc:
        raise _api_error(exc) from exc
    return views.run_summary(run)


@router.post(
    "/{run_id}/compensate",
    status_code=202,
    response_model=CompensationStarted,
    responses=error_responses(401, 403, 404, 409),
)
def compensate_run(
    run_id: uuid.UUID,
    background: BackgroundTasks,
    body: CompensateRequest | None = None,
    principal: Principal = Depends(require("operator")),  # noqa: B008
    store: RunStore = Depends(get_store),  # noqa: B008
    dagster: DagsterGateway = Depends(get_dagster),  # noqa: B008
) -> CompensationStarted:
    """Undo the completed steps of a failed or aborted run with their `compensate:` calls,
    the last completed first, in a compensation job launched right after the answer (a
    failed compensation: its failed steps again, the completed ones kept).

    409 names the state when it does not apply: the run has not ended or completed, its
    compensation is pending, running or completed already, or no compensable step completed.
    """
    lifecycle = Lifecycle(store, dagster, via="api")
    try:
        steps = lifecycle.prepare_compensation(
            run_id,
            by=principal.user_name,
            organization=principal.organization,
            reason=_reason(body.reason if body else None),
        )
    except LifecycleError as exc:
        raise _api_error(exc) from exc
    background.add_task(lifecycle.launch_compensation, run_id)
    status = store.get_run(run_id).compensation or "pending"
    return CompensationStarted(run_id=str(run_id), compensation=status, steps=steps)


@router.post(
    "/{run_id}/steps/{step_id}/retry",
    status_code=202,
    response_model=StepAction,
    responses=error_responses(401, 403, 404, 409, 422),
)
def retry_step(
    run_id: uuid.UUID,
    step_id: str,
    background: BackgroundTasks,
    body: RetryRequest | None = None,
    principal: Principal = Depends(require("operator")),  # noqa: B008
    store: RunStore = Depends(get_store),  # noqa: B008
    dagster: DagsterGateway = Depends(get_dagster),  # noqa: B008
) -> StepAction:
    """Run a failed or orphaned step of a failed run again, in a new Dagster run (segment)
    of the same orchestration run that reuses the finished steps. The body is optional:
    `input` replaces the step's rendered input (a new logical call), `reason` is audited.

    409 names the run's and the step's status when the action does not apply (a running or
    paused run has no failed step to retry; a completed one is a checkpoint's `retry`).
    """
    given = body or RetryRequest()
    reason = _reason(given.reason)
    lifecycle = Lifecycle(store, None, via="api")  # launched after the answer, below
    try:
        # The guarded change happens now (so a second click gets 409); the launch after.
        prepared = lifecycle.prepare_retry(
            run_id,
            step_id,
            by=principal.user_name,
            organization=principal.organization,
            input=given.input,
            reason=reason,
        )
    except LifecycleError as exc:
        raise _api_error(exc) from exc
    return _accepted(prepared, store, dagster, background)


@router.post(
    "/{run_id}/steps/{step_id}/skip",
    status_code=202,
    response_model=StepAction,
    responses=error_responses(401, 403, 404, 409, 422),
)
def skip_step(
    run_id: uuid.UUID,
    step_id: str,
    background: BackgroundTasks,
    body: SkipRequest | None = None,
    principal: Principal = Depends(require("operator")),  # noqa: B008
    store: RunStore = Depends(get_store),  # noqa: B008
    dagster: DagsterGateway = Depends(get_dagster),  # noqa: B008
) -> StepAction:
    """Skip a failed or orphaned step of a failed run (the run continues in a new segment)
    or a pending step of a run under way (skipped ahead: nothing is launched, the run's
    segment reuses it). `output`, if given, is the step's output for the steps after it.

    409 names the run's and the step's status when the action does not apply.
    """
    given = body or SkipRequest()
    reason = _reason(given.reason)
    lifecycle = Lifecycle(store, None, via="api")
    try:
        prepared = lifecycle.prepare_skip(
            run_id,
            step_id,
            by=principal.user_name,
            organization=principal.organization,
            output=given.output,
            reason=reason,
            # An explicit "output": null is a given output too; a missing one is not.
            given="output" in given.model_fields_set,
        )
    except LifecycleError as exc:
        raise _api_error(exc) from exc
    return _accepted(prepared, store, dagster, background)


def _reason(reason: str | None) -> str | None:
    try:
        return check_reason(reason)
    except ValueProblem as exc:
        raise ApiError(422, "invalid", str(exc), field=exc.field) from exc


def _accepted(
    prepared: Prepared, store: RunStore, dagster: DagsterGateway, background: BackgroundTasks
) -> StepAction:
    """The answer to an accepted retry or skip; its segment starts right after it."""
    run_id = prepared.segment.run_id
    if prepared.launch:
        background.add_task(Lifecycle(store, dagster, via="api").launch_prepared, prepared)
    action: Literal["retry", "skip"] = "retry" if prepared.action == "retry" else "skip"
    return StepAction(
        run_id=str(run_id),
        step_id=prepared.step_id,
        action=action,
        status=store.get_run(run_id).status,
        audit_id=str(prepared.audit_id) if prepared.audit_id else None,
        launched=prepared.launch,
    )


def _api_error(exc: LifecycleError) -> ApiError:
    if exc.code == "not_found":
        return not_found(str(exc))
    if exc.code == "invalid":
        return ApiError(422, "invalid", str(exc), field=exc.field)
    return ApiError(409, "conflict", str(exc))
