"""Rows of Baton's tables as the API's response bodies.

Values read back go through ``sanitized`` (``clean`` here): the edge now refuses lone
surrogates and non-finite numbers, but a row stored before it did must not make a listing or
a run fail to serialize for everyone who reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from baton.api import schemas
from baton.cli.approvals import approval_view
from baton.db.models import (
    ApprovalVote,
    HumanApproval,
    OperatorAction,
    OrchestrationDefinition,
    OrchestrationEvent,
    OrchestrationRun,
    OrchestrationStep,
    StepCompensation,
)
from baton.store.service import DeliverableRecord
from orchestration_defs.language.values import sanitized as clean


def run_summary(run: OrchestrationRun) -> schemas.RunSummary:
    return schemas.RunSummary(
        run_id=str(run.id),
        orchestration=run.orchestration,
        version=run.version,
        organization=run.organization,
        status=run.status,
        inputs=clean(run.inputs or {}),
        outputs=clean(run.outputs),
        error=clean(run.error),
        parent_run_id=str(run.parent_run_id) if run.parent_run_id else None,
        created_by=clean(run.created_by),
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
    )


def step(row: OrchestrationStep) -> schemas.Step:
    return schemas.Step(
        step_id=clean(row.step_id),
        status=row.status,
        attempt=row.attempt,
        agent=row.agent,
        input=clean(row.input),
        output=clean(row.output),
        error=clean(row.error),
        dagster_run_id=row.dagster_run_id,
        started_at=row.started_at,
        finished_at=row.finished_at,
        cache=row.cache,
    )


def compensation(
    run: OrchestrationRun, rows: Sequence[StepCompensation]
) -> schemas.CompensationView | None:
    if run.compensation is None:
        return None
    steps = [
        schemas.CompensationStep(
            step_id=clean(row.step_id),
            position=row.position,
            status=row.status,
            attempt=row.attempt,
            agent=row.agent,
            error=clean(row.error),
            dagster_run_id=row.dagster_run_id,
        )
        for row in rows
    ]
    return schemas.CompensationView(
        status=run.compensation, error=clean(run.compensation_error), steps=steps
    )


def audit_entry(row: OperatorAction) -> schemas.AuditEntry:
    return schemas.AuditEntry(
        id=str(row.id),
        run_id=str(row.run_id),
        step_id=clean(row.step_id),
        action=row.action,
        by=clean(row.by),
        via=row.via,
        reason=clean(row.reason),
        details=clean(row.details or {}),
        run_status=row.run_status,
        step_status=row.step_status,
        outcome=row.outcome,
        message=clean(row.message),
        at=row.created_at,
    )


def deliverable(record: DeliverableRecord) -> schemas.DeliverableView:
    return schemas.DeliverableView(
        id=str(record.id),
        step_id=record.step_id,
        name=clean(record.name),
        type=record.type,
        version=record.version,
        asset_uri=record.asset_uri,
        mime_type=record.mime_type,
        size_bytes=record.size_bytes,
    )


def approval(
    row: HumanApproval,
    votes: Sequence[ApprovalVote] | None = None,
    chain: Sequence[dict[str, Any]] | None = None,
) -> schemas.ApprovalView:
    view = approval_view(row, list(votes) if votes is not None else None, chain)
    return schemas.ApprovalView.model_validate(clean(view))


def event(row: OrchestrationEvent) -> schemas.Event:
    return schemas.Event(
        id=row.sequence,
        run_id=str(row.run_id) if row.run_id else None,
        type=row.type,
        payload=clean(row.payload or {}),
        created_at=row.created_at,
    )


def orchestration(row: OrchestrationDefinition) -> schemas.Orchestration:
    return schemas.Orchestration(
        slug=row.slug,
        name=row.name,
        version=row.version,
        organization=row.organization,
        description=clean(row.description),
        inputs=clean(row.spec.get("inputs") or {}),
    )
