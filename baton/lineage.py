"""Lineage: the tree of runs below a run, and the pending approvals anywhere in it.

Read-only views for ``baton runs tree``, ``GET /api/v1/runs/{id}/tree`` and the approvals
lists: each node with its status, place in its parent step, duration and Dagster segments;
each approval with the chain of runs from the root down to the run that asks.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from baton.db.models import HumanApproval, OrchestrationEvent, OrchestrationRun
from baton.store.runs import RunsRepository
from baton.store.service import RunStore, UnknownRun


@dataclass(frozen=True)
class TreeApproval:
    """A pending approval inside a tree, with the runs above it (root first)."""

    approval: HumanApproval
    chain: list[dict[str, Any]]


# Dagster's status of each segment asked about (``baton.segment_status``); absent: unknown.
SegmentStatuses = Callable[[Sequence[str]], Mapping[str, str]]


def run_tree(
    store: RunStore,
    run_id: uuid.UUID,
    organization: str | None = None,
    statuses: SegmentStatuses | None = None,
) -> dict:
    """The run and every run below it, as nested nodes; each segment as ``{dagster_run_id,
    status}``, the status from ``statuses`` (None without it or when Dagster does not know).

    Raises:
        UnknownRun: no such run (in ``organization``).
    """
    with store.session() as s:
        top = RunsRepository(s).get(run_id)
        if top is None or (organization is not None and top.organization != organization):
            raise UnknownRun(f"no orchestration run {run_id}")
        runs = [top, *_below(s, run_id)]
        segments = _segments(s, [r.id for r in runs])
    known = statuses([d for ids in segments.values() for d in ids]) if statuses else {}
    nodes = {
        r.id: _node(r, [{"dagster_run_id": d, "status": known.get(d)} for d in ids])
        for r in runs
        for ids in [segments.get(r.id, [])]
    }
    for run in runs[1:]:
        nodes[run.parent_run_id]["children"].append(nodes[run.id])  # type: ignore[index]
    return nodes[top.id]


def tree_run_ids(s: Session, run_id: uuid.UUID) -> list[uuid.UUID]:
    """``run_id`` and the ids of every run below it."""
    return [run_id, *(r.id for r in _below(s, run_id))]


def pending_in_tree(store: RunStore, run_id: uuid.UUID) -> list[TreeApproval]:
    """Pending approvals of the run and of every run below it, each with its chain."""
    return approvals_with_chains(store, status="pending", run_id=run_id)


def approvals_with_chains(
    store: RunStore,
    *,
    status: str | None = None,
    run_id: uuid.UUID | None = None,
    limit: int = 100,
) -> list[TreeApproval]:
    """Approvals oldest request first, each with its chain; with ``run_id`` only those of
    that run and every run below it."""
    with store.session() as s:
        query = select(HumanApproval)
        if status is not None:
            query = query.where(HumanApproval.status == status)
        if run_id is not None:
            query = query.where(HumanApproval.run_id.in_(tree_run_ids(s, run_id)))
        rows = s.scalars(query.order_by(HumanApproval.requested_at).limit(limit)).all()
        chains = chains_of(s, list({a.run_id for a in rows}))
        return [TreeApproval(a, chains[a.run_id]) for a in rows]


def chain_of(s: Session, run_id: uuid.UUID) -> list[dict[str, Any]]:
    """The runs from the root down to ``run_id``: slug, id, status and parent step."""
    return chains_of(s, [run_id])[run_id]


def chains_of(s: Session, run_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[dict[str, Any]]]:
    """``chain_of`` for many runs, each run above them read once (a page of approvals of one
    tree shares its upper links)."""
    links: dict[uuid.UUID, tuple[dict[str, Any], uuid.UUID | None]] = {}
    found = {}
    for run_id in run_ids:
        chain = []
        current: uuid.UUID | None = run_id
        while current is not None:
            if current not in links:
                run = RunsRepository(s).get(current, include_deleted=True)
                if run is None:
                    break
                links[current] = (_link(run), run.parent_run_id)
            link, current = links[current]
            chain.append(link)
        found[run_id] = list(reversed(chain))
    return found


def chain_text(chain: Sequence[dict[str, Any]]) -> str:
    """Where a run sits, for people: "in kpi-tracking (child 2 of periods) of finance-manager
    run ID"; empty for a root run (nothing above it)."""
    if len(chain) < 2:
        return ""
    parts = [f"{link['orchestration']} ({_place(link)})" for link in reversed(chain[1:])]
    root = chain[0]
    return f"in {' of '.join(parts)} of {root['orchestration']} run {root['run_id']}"


def _place(link: dict[str, Any]) -> str:
    if link["index"] is None:
        return f"child of {link['parent_step']}"
    return f"child {link['index'] + 1} of {link['parent_step']}"


def _link(run: OrchestrationRun) -> dict[str, Any]:
    return {
        "run_id": str(run.id),
        "orchestration": run.orchestration,
        "status": run.status,
        "parent_step": run.parent_step_id,
        "index": run.parent_step_index,
    }


def _below(s: Session, run_id: uuid.UUID) -> list[OrchestrationRun]:
    """Every run below ``run_id``, level by level, each level in for_each order."""
    found: list[OrchestrationRun] = []
    level = [run_id]
    while level:
        rows = s.scalars(
            select(OrchestrationRun)
            .where(OrchestrationRun.parent_run_id.in_(level), OrchestrationRun.deleted_at.is_(None))
            .order_by(
                OrchestrationRun.parent_step_attempt,
                OrchestrationRun.parent_step_index,
                OrchestrationRun.created_at,
            )
        ).all()
        found.extend(rows)
        level = [r.id for r in rows]
    return found


def _segments(s: Session, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    rows = s.execute(
        select(OrchestrationEvent.run_id, OrchestrationEvent.payload)
        .where(
            OrchestrationEvent.run_id.in_(ids),
            OrchestrationEvent.type == "run.segment_started",
        )
        .order_by(OrchestrationEvent.sequence)
    ).all()
    found: dict[uuid.UUID, list[str]] = {}
    for run_id, payload in rows:
        found.setdefault(run_id, []).append(str(payload.get("dagster_run_id")))
    return found


def _node(run: OrchestrationRun, segments: list[dict[str, Any]]) -> dict[str, Any]:
    duration = None
    if run.started_at is not None and run.finished_at is not None:
        duration = round((run.finished_at - run.started_at).total_seconds(), 3)
    return {
        "run_id": str(run.id),
        "orchestration": run.orchestration,
        "version": run.version,
        "status": run.status,
        "parent_step": run.parent_step_id,
        "index": run.parent_step_index,
        "attempt": run.parent_step_attempt,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "duration_seconds": duration,
        "segments": segments,
        "error": run.error,
        "children": [],
    }
