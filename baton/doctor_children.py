"""What child runs wait on, for ``baton doctor``: each entry says whether it progresses.

A parent ``awaiting_children`` whose children of the waiting step all ended has nothing left
to wait for: it is stuck until a child's end or the children sensor resumes it. A launch
claimed (of a child, or of a parent's resumed segment) whose segment has not started after
the claim lease is stuck, with the reason the launch gave. A child not yet claimed waits for a
slot under ``max_parallel``: it progresses while a sibling runs, and is stuck when none does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from baton.db.models import OrchestrationRun, OrchestrationStep
from baton.state import TERMINAL_RUN_STATUSES

NOT_RESUMED = "children_not_resumed"
NOT_LAUNCHED = "launch_not_started"
WAITING_SLOT = "child_waiting_slot"
KINDS = (NOT_RESUMED, NOT_LAUNCHED, WAITING_SLOT)
# Builds one entry: (kind, id, since, reason, run_id, stuck) -> baton.doctor.Waiting
Make = Callable[[str, str, datetime | None, str, str | None, bool], Any]


def child_waits(s: Session, now: datetime, grace: timedelta, lease: timedelta, make: Make) -> list:
    return [*_parents(s, now, grace, make), *_claims(s, now, lease, make), *_slots(s, make)]


def _aware(value: datetime | None) -> datetime | None:
    """SQLite gives naive datetimes back; every stored time is UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _parents(s: Session, now: datetime, grace: timedelta, make: Make) -> list:
    found = []
    for parent, step in _waiting_parents(s):
        children = _children(s, parent, step)
        if not children or any(c.status not in TERMINAL_RUN_STATUSES for c in children):
            continue
        ends = [e for c in children if (e := _aware(c.finished_at or c.updated_at)) is not None]
        ended = max(ends, default=None)
        if ended is None or ended > now - grace:
            continue  # the fast path is still resuming it
        statuses = ", ".join(sorted({c.status for c in children}))
        reason = (
            f"all {len(children)} children of step '{step.step_id}' ended ({statuses}) but the "
            "parent has not resumed: no child's end advanced it and baton_children_sensor has "
            "not (is the Dagster daemon running its sensors?)"
        )
        found.append(make(NOT_RESUMED, str(parent.id), ended, reason, str(parent.id), True))
    return found


def _claims(s: Session, now: datetime, lease: timedelta, make: Make) -> list:
    rows = s.scalars(
        select(OrchestrationRun)
        .where(
            OrchestrationRun.launch_claimed_by.is_not(None),
            OrchestrationRun.status.in_(("pending", "running")),
            OrchestrationRun.deleted_at.is_(None),
        )
        .order_by(OrchestrationRun.updated_at)
    )
    found = []
    for run in rows:
        claimed = _aware(run.launch_claimed_at)
        if run.launch_error:
            reason = (
                f"its segment did not start: {run.launch_error} (baton_children_sensor retries)"
            )
        elif claimed is not None and claimed < now - lease:
            reason = (
                f"launch claimed by {run.launch_claimed_by} at {claimed.isoformat()}, longer than "
                "the claim lease ago, and no segment has started (the sensor takes it over)"
            )
        else:
            continue
        found.append(make(NOT_LAUNCHED, str(run.id), claimed, reason, str(run.id), True))
    return found


def _slots(s: Session, make: Make) -> list:
    found = []
    for parent, step in _waiting_parents(s):
        children = _children(s, parent, step)
        limit = (step.input or {}).get("max_parallel") or len(children)
        running = [c for c in children if c.segment_id and c.status not in TERMINAL_RUN_STATUSES]
        for child in children:
            if child.segment_id is not None or child.status != "pending":
                continue
            stuck = not running
            found.append(
                make(
                    WAITING_SLOT,
                    str(child.id),
                    _aware(child.created_at),
                    _slot_reason(step, running, limit, stuck),
                    str(parent.id),
                    stuck,
                )
            )
    return found


def _slot_reason(
    step: OrchestrationStep, running: Sequence[OrchestrationRun], limit: int, stuck: bool
) -> str:
    if stuck:
        return (
            f"waits for a slot of step '{step.step_id}' (max_parallel {limit}) but no sibling "
            "runs: a slot is free and nothing claimed it (baton_children_sensor claims it)"
        )
    ids = ", ".join(str(c.id) for c in running)
    return (
        f"progressing: waits for a slot of step '{step.step_id}', {len(running)} of "
        f"max_parallel {limit} running ({ids})"
    )


def _waiting_parents(s: Session) -> list[tuple[OrchestrationRun, OrchestrationStep]]:
    rows = s.execute(
        select(OrchestrationRun, OrchestrationStep)
        .join(OrchestrationStep, OrchestrationStep.run_id == OrchestrationRun.id)
        .where(
            OrchestrationRun.status == "awaiting_children",
            OrchestrationRun.deleted_at.is_(None),
            OrchestrationStep.status == "waiting",
            OrchestrationStep.kind == "orchestration",
        )
        .order_by(OrchestrationRun.updated_at)
    ).all()
    return [(run, step) for run, step in rows]


def _children(
    s: Session, parent: OrchestrationRun, step: OrchestrationStep
) -> Sequence[OrchestrationRun]:
    return s.scalars(
        select(OrchestrationRun)
        .where(
            OrchestrationRun.parent_run_id == parent.id,
            OrchestrationRun.parent_step_id == step.step_id,
            OrchestrationRun.parent_step_attempt == step.attempt,
        )
        .order_by(OrchestrationRun.parent_step_index)
    ).all()
