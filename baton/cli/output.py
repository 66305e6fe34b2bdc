"""Printing helpers shared by the CLI commands."""

from __future__ import annotations

import json
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

from baton.db.models import OperatorAction, OrchestrationRun, OrchestrationStep


def _default(value: Any) -> Any:
    if isinstance(value, datetime | uuid.UUID):
        return str(value) if isinstance(value, uuid.UUID) else value.isoformat()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def dumps(value: Any, *, indent: int | None = 2) -> str:
    return json.dumps(value, default=_default, indent=indent, sort_keys=False)


def error(message: str) -> None:
    """An error for a person, on standard error."""
    print(f"error: {message}", file=sys.stderr)


def run_summary(run: OrchestrationRun) -> dict[str, Any]:
    return {
        "run_id": str(run.id),
        "orchestration": run.orchestration,
        "version": run.version,
        "organization": run.organization,
        "status": run.status,
        "inputs": run.inputs,
        "outputs": run.outputs,
        "error": run.error,
        "parent_run_id": str(run.parent_run_id) if run.parent_run_id else None,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
    }


def step_summary(step: OrchestrationStep) -> dict[str, Any]:
    return {
        "step_id": step.step_id,
        "status": step.status,
        "attempt": step.attempt,
        "agent": step.agent,
        "input": step.input,
        "output": step.output,
        "error": step.error,
        "dagster_run_id": step.dagster_run_id,
        "started_at": step.started_at,
        "finished_at": step.finished_at,
        "cache": step.cache,
    }


def utc(value: datetime) -> datetime:
    """A stored time with its UTC offset (SQLite hands back naive datetimes)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def audit_summary(row: OperatorAction) -> dict[str, Any]:
    """One audit log entry as ``baton runs show --json`` prints it (the API's AuditEntry)."""
    return {
        "id": str(row.id),
        "run_id": str(row.run_id),
        "step_id": row.step_id,
        "action": row.action,
        "by": row.by,
        "via": row.via,
        "reason": row.reason,
        "details": row.details or {},
        "run_status": row.run_status,
        "step_status": row.step_status,
        "outcome": row.outcome,
        "message": row.message,
        "at": utc(row.created_at),
    }
