"""The API's reads: organization-scoped, keyset-paginated queries on Baton's tables."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from baton.api.pagination import decode_cursor, encode_cursor, invalid_cursor
from baton.db.models import HumanApproval, OrchestrationEvent, OrchestrationRun


def as_utc(value: datetime) -> datetime:
    """Naive datetimes are UTC (SQLite returns them naive); aware ones are converted."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _cursor_time(raw: object) -> datetime:
    try:
        return as_utc(datetime.fromisoformat(str(raw)))
    except ValueError as exc:
        raise invalid_cursor() from exc


def _cursor_uuid(raw: object) -> uuid.UUID:
    try:
        return uuid.UUID(str(raw))
    except ValueError as exc:
        raise invalid_cursor() from exc


@dataclass(frozen=True)
class RunFilters:
    status: str | None = None
    orchestration: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    parent: uuid.UUID | None = None
    root: uuid.UUID | None = None


def scoped_run(s: Session, organization: str, run_id: uuid.UUID) -> OrchestrationRun | None:
    """The run if it exists, is not deleted and belongs to ``organization``."""
    run = s.get(OrchestrationRun, run_id, populate_existing=True)
    if run is None or run.deleted_at is not None or run.organization != organization:
        return None
    return run


def runs_page(
    s: Session, organization: str, filters: RunFilters, *, limit: int, cursor: str | None
) -> tuple[Sequence[OrchestrationRun], str | None]:
    """Runs newest first (created_at, then id, descending) after ``cursor``."""
    run = OrchestrationRun
    query = select(run).where(run.organization == organization, run.deleted_at.is_(None))
    if filters.status is not None:
        query = query.where(run.status == filters.status)
    if filters.orchestration is not None:
        query = query.where(run.orchestration == filters.orchestration)
    if filters.since is not None:
        query = query.where(run.created_at >= as_utc(filters.since))
    if filters.until is not None:
        query = query.where(run.created_at < as_utc(filters.until))
    if filters.parent is not None:
        query = query.where(run.parent_run_id == filters.parent)
    if filters.root is not None:  # the root and every run below it
        query = query.where(or_(run.id == filters.root, run.root_run_id == filters.root))
    if cursor is not None:
        at, ident = decode_cursor(cursor, 2)
        at, ident = _cursor_time(at), _cursor_uuid(ident)
        query = query.where(or_(run.created_at < at, and_(run.created_at == at, run.id < ident)))
    rows = s.scalars(query.order_by(run.created_at.desc(), run.id.desc()).limit(limit + 1)).all()
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], encode_cursor(as_utc(last.created_at).isoformat(), str(last.id))


def scoped_approval(s: Session, organization: str, approval_id: uuid.UUID) -> HumanApproval | None:
    row = s.get(HumanApproval, approval_id, populate_existing=True)
    if row is None or row.organization != organization:
        return None
    return row


def approvals_page(
    s: Session,
    organization: str,
    status: str | None,
    *,
    limit: int,
    cursor: str | None,
    run_ids: Sequence[uuid.UUID] | None = None,
) -> tuple[Sequence[HumanApproval], str | None]:
    """Approvals oldest request first (requested_at, then id) after ``cursor``; only those of
    ``run_ids`` when given (a tree: ``baton.lineage.tree_run_ids``)."""
    a = HumanApproval
    query = select(a).where(a.organization == organization)
    if status is not None:
        query = query.where(a.status == status)
    if run_ids is not None:
        query = query.where(a.run_id.in_(run_ids))
    if cursor is not None:
        at, ident = decode_cursor(cursor, 2)
        at, ident = _cursor_time(at), _cursor_uuid(ident)
        query = query.where(or_(a.requested_at > at, and_(a.requested_at == at, a.id > ident)))
    rows = s.scalars(query.order_by(a.requested_at, a.id).limit(limit + 1)).all()
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], encode_cursor(as_utc(last.requested_at).isoformat(), str(last.id))


def events_after(
    s: Session,
    organization: str,
    *,
    after: int,
    limit: int,
    run_id: uuid.UUID | None = None,
    upto: int | None = None,
    run_ids: Sequence[uuid.UUID] | None = None,
) -> Sequence[OrchestrationEvent]:
    """An organization's events with a sequence above ``after`` (and up to ``upto``), in order;
    only ``run_id``'s, or those of any of ``run_ids`` (a tree), when given."""
    e = OrchestrationEvent
    query = select(e).where(e.organization == organization, e.sequence > after)
    if upto is not None:
        query = query.where(e.sequence <= upto)
    if run_id is not None:
        query = query.where(e.run_id == run_id)
    if run_ids is not None:
        query = query.where(e.run_id.in_(run_ids))
    return s.scalars(query.order_by(e.sequence).limit(limit)).all()


def sequences_after(s: Session, *, after: int, limit: int) -> Sequence[int]:
    """The sequences above ``after`` in the whole log (every organization), in order.

    Only numbers: streams use them to see gaps (``baton.api.sse.Horizon``), never content.
    """
    e = OrchestrationEvent
    query = select(e.sequence).where(e.sequence > after).order_by(e.sequence).limit(limit)
    return s.scalars(query).all()


def event_cursor(cursor: str | None) -> int:
    """The sequence inside an events cursor (0 when absent)."""
    if cursor is None:
        return 0
    (after,) = decode_cursor(cursor, 1)
    if not isinstance(after, int) or isinstance(after, bool) or after < 0:
        raise invalid_cursor()
    return int(after)
