"""The seeded agent catalog: one row per agent, updated when its YAML entry changes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from baton.db.models import AgentRecord, utcnow


def entry_checksum(entry: dict[str, Any]) -> str:
    """SHA-256 of an entry's canonical JSON."""
    return hashlib.sha256(json.dumps(entry, sort_keys=True).encode()).hexdigest()


class AgentsRepository:
    """Agent rows keyed by slug."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def seed(self, entries: Iterable[dict[str, Any]]) -> int:
        """Insert new entries and update changed ones; returns how many rows changed.

        Idempotent, and safe when several processes seed at once (first start of the API, the
        code servers and the CLI): each row is one insert-or-update on the slug, so the loser
        of a race updates the winner's row instead of failing on the primary key.
        """
        rows = [_row(entry) for entry in entries]
        query = select(AgentRecord.slug, AgentRecord.checksum).where(
            AgentRecord.slug.in_([row["slug"] for row in rows])
        )
        stored: dict[str, str] = {slug: checksum for slug, checksum in self.session.execute(query)}
        changed = 0
        for row in rows:
            if stored.get(row["slug"]) == row["checksum"]:
                continue  # most starts: nothing to write
            result = self.session.execute(_upsert(self.session, row))
            changed += max(result.rowcount, 0)  # type: ignore[attr-defined]
        return changed

    def list(self) -> Sequence[AgentRecord]:
        return self.session.scalars(select(AgentRecord).order_by(AgentRecord.slug)).all()


def _row(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "slug": entry["slug"],
        "type": entry["type"],
        "description": entry["description"],
        "config": entry.get("config", {}),
        "env": entry.get("env", []),
        "limits": entry.get("limits", {}),
        "checksum": entry_checksum(entry),
    }


def _upsert(session: Session, row: dict[str, Any]) -> Any:
    """INSERT ... ON CONFLICT (slug) DO UPDATE, only when the checksum differs."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    now = utcnow()
    statement = insert(AgentRecord).values(**row, created_at=now, updated_at=now)
    changed = {key: statement.excluded[key] for key in row if key != "slug"}
    return statement.on_conflict_do_update(
        index_elements=[AgentRecord.slug],
        set_={**changed, "updated_at": now},
        where=AgentRecord.checksum != statement.excluded.checksum,
    )
