"""The inbox: accepted inbound webhooks, written before the sender gets its answer.

The route stores a webhook here and only then answers 202, so an accepted webhook survives a
sensor that is down or a crash. The accepting process then starts its runs itself (the fast
path) and marks the row; the webhook sensor reads rows after its cursor and marks each one
processed (runs requested or started), ignored (no trigger matched) or still pending (waiting
for a job, or for a fast-path claim to start or expire; ``result`` says which).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from baton.db.engine import session_scope
from baton.db.models import WebhookInbox, utcnow


@dataclass(frozen=True)
class InboxItem:
    """One stored webhook."""

    id: int
    source: str
    organization: str
    webhook_id: str
    body: Any
    status: str
    received_at: datetime
    result: dict[str, Any] | None = None


class Inbox:
    """Store and read the inbox at one database."""

    def __init__(self, url: str) -> None:
        self.url = url

    def accept(self, *, source: str, organization: str, webhook_id: str, body: Any) -> int | None:
        """Store a verified webhook and return its row id; None when this source already
        sent this id (a replay)."""
        try:
            with session_scope(self.url) as s:
                row = WebhookInbox(
                    source=source, organization=organization, webhook_id=webhook_id, body=body
                )
                s.add(row)
                s.flush()
                return int(row.id)
        except IntegrityError:
            return None  # the unique (source, webhook_id) refused it: stored once already

    def get(self, inbox_id: int) -> InboxItem | None:
        with session_scope(self.url) as s:
            row = s.get(WebhookInbox, inbox_id)
            return None if row is None else _item(row)

    def pending(
        self, *, after: int = 0, limit: int = 100, any_status: bool = False
    ) -> Sequence[InboxItem]:
        """Webhooks with an id above ``after``, oldest first: unprocessed ones only, or all.

        The sensor asks for all: a row its crashed tick marked is still above its cursor.
        """
        query = select(WebhookInbox).where(WebhookInbox.id > after)
        if not any_status:
            query = query.where(WebhookInbox.status == "pending")
        query = query.order_by(WebhookInbox.id).limit(limit)
        with session_scope(self.url) as s:
            return [_item(r) for r in s.scalars(query)]

    def held(self, *, upto: int, limit: int = 100) -> Sequence[InboxItem]:
        """Webhooks at or below ``upto`` still pending: those whose trigger waits for a job."""
        query = (
            select(WebhookInbox)
            .where(WebhookInbox.id <= upto, WebhookInbox.status == "pending")
            .order_by(WebhookInbox.id)
            .limit(limit)
        )
        with session_scope(self.url) as s:
            return [_item(r) for r in s.scalars(query)]

    def mark(self, inbox_id: int, status: str, result: dict[str, Any]) -> None:
        """Record what became of a webhook: ``processed``, ``ignored``, or still ``pending``
        (a trigger fired for a job the code location lacks, a fast-path claim has not started
        or its launch failed; ``result`` says so)."""
        done = None if status == "pending" else utcnow()
        with session_scope(self.url) as s:
            s.execute(
                update(WebhookInbox)
                .where(WebhookInbox.id == inbox_id)
                .values(status=status, result=result, processed_at=done)
            )

    def list(self, *, source: str | None = None, limit: int = 100) -> Sequence[InboxItem]:
        """The newest webhooks first (for the CLI and tests)."""
        query = select(WebhookInbox).order_by(WebhookInbox.id.desc()).limit(limit)
        if source is not None:
            query = query.where(WebhookInbox.source == source)
        with session_scope(self.url) as s:
            return [_item(r) for r in s.scalars(query)]

    def count(self) -> int:
        with session_scope(self.url) as s:
            return int(s.scalar(select(func.count()).select_from(WebhookInbox)) or 0)


def _item(row: WebhookInbox) -> InboxItem:
    return InboxItem(
        row.id,
        row.source,
        row.organization,
        row.webhook_id,
        row.body,
        row.status,
        row.received_at,
        row.result,
    )
