"""Retention: delete what Baton no longer needs, a run tree at a time, in batches.

A run goes only with its whole tree (its root and every sub-run), and only when every run of
the tree ended (completed, failed, aborted; no compensation pending or running) before the
cutoff. A tree an operator acted on (``operator_actions``, the audit log) is kept until its
newest action is older than the audit cutoff, which is usually longer: the audit is read
together with its run, and its foreign key deletes it with the run.

Rows of a tree are deleted explicitly, children before parents, so the counts are exact and
nothing depends on cascades; each batch of trees is one transaction. Deliverable files in the
local asset store are removed after their rows are committed (a failed transaction leaves the
bytes, never a row without them). With a Dagster instance, the Dagster runs of a batch (their
segments) are deleted before its rows: a failure then leaves Baton's rows, and the next prune
finds the same runs again.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import ColumnElement, Select, delete, func, or_, select
from sqlalchemy.orm import Session

from baton.db.engine import session_scope
from baton.db.models import (
    ApprovalVote,
    Deliverable,
    HumanApproval,
    OperatorAction,
    OrchestrationEvent,
    OrchestrationRun,
    OrchestrationStep,
    StepCacheEntry,
    StepCompensation,
    WebhookDelivery,
    WebhookInbox,
)
from baton.segments import RUN_TAG
from baton.state import TERMINAL_RUN_STATUSES

if TYPE_CHECKING:
    from dagster import DagsterInstance

log = logging.getLogger(__name__)

BATCH_SIZE = 500
# Statements name at most this many ids (SQLite's variable limit is 32766, older ones 999).
_IDS_PER_STATEMENT = 500
# A compensation still to run keeps its run: it is not over yet.
_COMPENSATION_UNDER_WAY = ("pending", "running")
_FINISHED_DAGSTER_STATUSES = ("SUCCESS", "FAILURE", "CANCELED")

_DURATION = re.compile(r"^([0-9]+)([hdw])$")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}

# The order rows are reported in (and deleted in: what refers to a row goes before it).
TABLES = (
    "approval_votes",
    "human_approvals",
    "orchestration_steps",
    "step_compensations",
    "deliverables",
    "operator_actions",
    "orchestration_events",
    "orchestration_runs",
    "orchestration_events (no run)",
    "webhook_inbox",
    "webhook_deliveries",
    "step_cache (expired)",
)


class RetentionError(ValueError):
    """A prune that cannot be asked like this, with what to give instead."""


def parse_age(text: str, option: str = "--older-than") -> timedelta:
    """A positive age such as ``12h``, ``30d`` or ``2w``.

    Raises:
        RetentionError: anything else, naming ``option`` and the accepted forms.
    """
    match = _DURATION.match(text.strip())
    if match is None or int(match.group(1)) <= 0:
        raise RetentionError(
            f"{option}: expected a positive whole number of hours, days or weeks "
            f"(e.g. 12h, 30d, 2w), got {text!r}"
        )
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


@dataclass
class PruneReport:
    """What a prune deleted (or, dry, would delete), table by table."""

    cutoff: datetime
    audit_cutoff: datetime
    dry_run: bool
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    trees: int = 0
    # Trees whose root ended before the cutoff but that stay: a member not ended (or ended
    # since), or an operator action newer than the audit cutoff.
    kept_unfinished: int = 0
    kept_audited: int = 0
    asset_files: int = 0
    # None: Dagster's runs were not looked at (no instance given).
    dagster_runs: int | None = None
    # Dagster runs of pruned trees that were not finished (left alone).
    dagster_unfinished: int = 0


@dataclass(frozen=True)
class _Member:
    id: uuid.UUID
    root: uuid.UUID
    depth: int


def prune(
    db_url: str,
    cutoff: datetime,
    *,
    audit_cutoff: datetime,
    dry_run: bool = False,
    instance: DagsterInstance | None = None,
    assets_root: Path | None = None,
    now: datetime,
    batch_size: int = BATCH_SIZE,
) -> PruneReport:
    """Delete run trees that ended before ``cutoff``, with everything that belongs to them,
    and the processed webhooks, finished deliveries, run-less events and expired cache entries
    older than it; ``dry_run`` counts the same and deletes nothing.

    Args:
        db_url: Baton's database.
        cutoff: what ended (or was received, created) before this goes.
        audit_cutoff: a tree with an operator action at or after this stays.
        dry_run: count only.
        instance: also delete the Dagster runs of the pruned trees.
        assets_root: the local asset store's folder; deliverable files under it are removed.
        now: the clock (expired cache entries are those past their ``expires_at`` at ``now``).
        batch_size: run trees (or flat rows) per transaction.
    """
    report = PruneReport(cutoff=cutoff, audit_cutoff=audit_cutoff, dry_run=dry_run)
    if instance is not None:
        report.dagster_runs = 0
    after: uuid.UUID | None = None
    while True:
        with session_scope(db_url) as session:
            roots = _candidate_roots(session, cutoff, after, batch_size)
            if not roots:
                break
            after = roots[-1]
            files = _prune_trees(session, roots, report, instance, assets_root)
        # Committed: the rows no longer name these files.
        for path in files:
            path.unlink(missing_ok=True)
            _remove_empty_parents(path, assets_root)
    for name, model, where in _flat_tables(cutoff, now):
        report.counts[name] += _prune_flat(db_url, model, where, dry_run, batch_size)
    return report


# Run trees ---------------------------------------------------------------------------------


def _ended_before(cutoff: datetime) -> ColumnElement[bool]:
    run = OrchestrationRun
    return (
        run.status.in_(TERMINAL_RUN_STATUSES)
        & (func.coalesce(run.finished_at, run.updated_at) < cutoff)
        & or_(run.compensation.is_(None), run.compensation.not_in(_COMPENSATION_UNDER_WAY))
    )


def _candidate_roots(
    session: Session, cutoff: datetime, after: uuid.UUID | None, limit: int
) -> list[uuid.UUID]:
    run = OrchestrationRun
    query = select(run.id).where(run.parent_run_id.is_(None), _ended_before(cutoff))
    if after is not None:
        query = query.where(run.id > after)
    return list(session.scalars(query.order_by(run.id).limit(limit)))


def _members(session: Session, roots: Sequence[uuid.UUID]) -> list[_Member]:
    """Every run of the trees of ``roots``, with its depth: level by level through
    ``parent_run_id``, then any other run whose ``root_run_id`` names a root (both foreign
    keys would cascade to it)."""
    run = OrchestrationRun
    found = {r: _Member(r, r, 0) for r in roots}
    level = list(roots)
    depth = 0
    while level:
        depth += 1
        below: list[uuid.UUID] = []
        for chunk in _chunks(level):
            rows = session.execute(
                select(run.id, run.parent_run_id).where(run.parent_run_id.in_(chunk))
            )
            for run_id, parent_id in rows:
                if run_id not in found:
                    found[run_id] = _Member(run_id, found[parent_id].root, depth)
                    below.append(run_id)
        level = below
    for chunk in _chunks(list(roots)):
        rows = session.execute(select(run.id, run.root_run_id).where(run.root_run_id.in_(chunk)))
        for run_id, root_id in rows:
            if run_id not in found:  # its parent link is broken: deleted before everything
                found[run_id] = _Member(run_id, root_id, depth + 1)
    return list(found.values())


def _blocked_roots(
    session: Session, members: Sequence[_Member], cutoff: datetime, audit_cutoff: datetime
) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
    """(roots with a member not ended before the cutoff, roots audited since audit_cutoff)."""
    root_of = {m.id: m.root for m in members}
    unfinished: set[uuid.UUID] = set()
    audited: set[uuid.UUID] = set()
    run = OrchestrationRun
    for chunk in _chunks(list(root_of)):
        # Locked until the batch commits (Postgres): a failed run retried meanwhile waits,
        # then finds its run gone, instead of losing its steps under a run that goes on.
        session.execute(select(run.id).where(run.id.in_(chunk)).with_for_update()).all()
        for (run_id,) in session.execute(
            select(run.id).where(run.id.in_(chunk), ~_ended_before(cutoff))
        ):
            unfinished.add(root_of[run_id])
        action = OperatorAction
        for (run_id,) in session.execute(
            select(action.run_id)
            .where(action.run_id.in_(chunk), action.created_at >= audit_cutoff)
            .distinct()
        ):
            audited.add(root_of[run_id])
    return unfinished, audited - unfinished


def _prune_trees(
    session: Session,
    roots: Sequence[uuid.UUID],
    report: PruneReport,
    instance: DagsterInstance | None,
    assets_root: Path | None,
) -> list[Path]:
    """Delete (or count) the trees of ``roots`` that may go; the asset files to remove."""
    members = _members(session, roots)
    unfinished, audited = _blocked_roots(session, members, report.cutoff, report.audit_cutoff)
    report.kept_unfinished += len(unfinished)
    report.kept_audited += len(audited)
    blocked = unfinished | audited
    going = [m for m in members if m.root not in blocked]
    report.trees += len({m.root for m in going})
    if not going:
        return []
    ids = [m.id for m in going]
    files = _asset_files(session, ids, assets_root)
    report.asset_files += len(files)
    if instance is not None:
        _prune_dagster(session, ids, instance, report)
    for name, statement in _tree_statements(going):
        report.counts[name] += _count_or_delete(session, statement, report.dry_run)
    return [] if report.dry_run else files


def _tree_statements(members: list[_Member]) -> Iterator[tuple[str, Select[Any]]]:
    """(table, SELECT of the primary keys to delete) for the rows of the runs ``members``."""
    ids = [m.id for m in members]
    for chunk in _chunks(ids):
        approvals = select(HumanApproval.id).where(HumanApproval.run_id.in_(chunk))
        votes = select(ApprovalVote.id).where(ApprovalVote.approval_id.in_(approvals))
        yield "approval_votes", votes
        yield "human_approvals", approvals
        for name, model in (
            ("orchestration_steps", OrchestrationStep),
            ("step_compensations", StepCompensation),
            ("deliverables", Deliverable),
            ("operator_actions", OperatorAction),
        ):
            yield name, select(model.id).where(model.run_id.in_(chunk))
        events = OrchestrationEvent
        yield "orchestration_events", select(events.sequence).where(events.run_id.in_(chunk))
    # The deepest runs first, one level per statement: a parent deleted with its child in one
    # statement would take the child by cascade, and the count would miss it.
    for depth in sorted({m.depth for m in members}, reverse=True):
        level = [m.id for m in members if m.depth == depth]
        for chunk in _chunks(level):
            run = OrchestrationRun
            yield "orchestration_runs", select(run.id).where(run.id.in_(chunk))


def _count_or_delete(session: Session, keys: Select[Any], dry_run: bool) -> int:
    """How many rows ``keys`` selects; deleted unless ``dry_run``."""
    if dry_run:
        return int(session.scalar(select(func.count()).select_from(keys.subquery())) or 0)
    column = keys.selected_columns[0]
    result = session.execute(delete(column.table).where(column.in_(keys)))
    return int(result.rowcount)  # type: ignore[attr-defined]


def _asset_files(session: Session, ids: list[uuid.UUID], assets_root: Path | None) -> list[Path]:
    """The files of the runs' deliverables that are in the local asset store."""
    if assets_root is None:
        return []
    root = assets_root.resolve()
    files: list[Path] = []
    for chunk in _chunks(ids):
        for uri in session.scalars(
            select(Deliverable.asset_uri).where(
                Deliverable.run_id.in_(chunk), Deliverable.asset_uri.is_not(None)
            )
        ):
            parts = urlsplit(uri or "")
            if parts.scheme != "file":
                continue  # another store's object: not this folder's to remove
            path = Path(unquote(parts.path)).resolve()
            if path.is_relative_to(root) and path != root and path.is_file():
                files.append(path)
    return files


def _remove_empty_parents(path: Path, assets_root: Path | None) -> None:
    if assets_root is None:
        return
    root = assets_root.resolve()
    parent = path.parent
    while parent != root and parent.is_relative_to(root):
        try:
            parent.rmdir()
        except OSError:
            return  # not empty (or already gone): what is left belongs to other runs
        parent = parent.parent


def _prune_dagster(
    session: Session, ids: list[uuid.UUID], instance: DagsterInstance, report: PruneReport
) -> None:
    """Delete (or count) the finished Dagster runs of the runs ``ids``: every segment, found
    by the ``baton/run_id`` tag and by the ids Baton's rows recorded."""
    from dagster import RunsFilter

    dagster_ids: set[str] = set()
    for chunk in _chunks(ids):
        for column, key in (
            (OrchestrationRun.last_dagster_run_id, OrchestrationRun.id),
            (OrchestrationStep.dagster_run_id, OrchestrationStep.run_id),
            (HumanApproval.dagster_run_id, HumanApproval.run_id),
            (HumanApproval.resumed_dagster_run_id, HumanApproval.run_id),
            (Deliverable.dagster_run_id, Deliverable.run_id),
            (StepCompensation.dagster_run_id, StepCompensation.run_id),
        ):
            dagster_ids.update(
                v for v in session.scalars(select(column).where(key.in_(chunk))) if v
            )
        tagged = RunsFilter(tags={RUN_TAG: [str(i) for i in chunk]})
        dagster_ids.update(instance.get_run_ids(filters=tagged))
    for dagster_id in sorted(dagster_ids):
        record = instance.get_run_by_id(dagster_id)
        if record is None:
            continue  # deleted already (an earlier prune, `dagster run delete`)
        if record.status.value not in _FINISHED_DAGSTER_STATUSES:
            report.dagster_unfinished += 1
            log.warning("Dagster run %s is %s: left in place", dagster_id, record.status.value)
            continue
        if not report.dry_run:
            instance.delete_run(dagster_id)
        assert report.dagster_runs is not None
        report.dagster_runs += 1


# Rows that belong to no run ----------------------------------------------------------------


def _flat_tables(cutoff: datetime, now: datetime) -> list[tuple[str, Any, ColumnElement[bool]]]:
    inbox, deliveries = WebhookInbox, WebhookDelivery
    return [
        (
            "orchestration_events (no run)",
            OrchestrationEvent,
            OrchestrationEvent.run_id.is_(None) & (OrchestrationEvent.created_at < cutoff),
        ),
        (
            "webhook_inbox",
            inbox,
            inbox.status.in_(("processed", "ignored"))
            & (func.coalesce(inbox.processed_at, inbox.received_at) < cutoff),
        ),
        (
            "webhook_deliveries",
            deliveries,
            deliveries.status.in_(("delivered", "failed")) & (deliveries.created_at < cutoff),
        ),
        # A fresh entry is still a reusable answer, whoever wrote it: only dead ones go.
        (
            "step_cache (expired)",
            StepCacheEntry,
            (StepCacheEntry.created_at < cutoff) & (StepCacheEntry.expires_at <= now),
        ),
    ]


def _prune_flat(
    db_url: str, model: Any, where: ColumnElement[bool], dry_run: bool, batch_size: int
) -> int:
    key = model.sequence if model is OrchestrationEvent else model.id
    if dry_run:
        with session_scope(db_url) as session:
            return int(session.scalar(select(func.count()).select_from(model).where(where)) or 0)
    total = 0
    while True:
        with session_scope(db_url) as session:
            keys = list(session.scalars(select(key).where(where).order_by(key).limit(batch_size)))
            for chunk in _chunks(keys):
                session.execute(delete(model).where(key.in_(chunk)))
        total += len(keys)
        if len(keys) < batch_size:
            return total


def _chunks(
    values: Sequence[Any] | Iterable[Any], size: int = _IDS_PER_STATEMENT
) -> Iterator[list[Any]]:
    items = list(values)
    for start in range(0, len(items), size):
        yield items[start : start + size]
