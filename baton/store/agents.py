"""The seeded agent catalog: one row per agent, updated when its YAML entry changes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from baton.db.models import AgentRecord


def entry_checksum(entry: dict[str, Any]) -> str:
    """SHA-256 of an entry's canonical JSON."""
    return hashlib.sha256(json.dumps(entry, sort_keys=True).encode()).hexdigest()


class AgentsRepository:
    """Agent rows keyed by slug."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def seed(self, entries: Iterable[dict[str, Any]]) -> int:
        """Insert new entries and update changed ones; returns how many rows changed.

        Idempotent: seeding the same entries again changes nothing.
        """
        changed = 0
        for entry in entries:
            checksum = entry_checksum(entry)
            row = self.session.get(AgentRecord, entry["slug"])
            if row is not None and row.checksum == checksum:
                continue
            values = {
                "type": entry["type"],
                "description": entry["description"],
                "config": entry.get("config", {}),
                "env": entry.get("env", []),
                "limits": entry.get("limits", {}),
                "checksum": checksum,
            }
            if row is None:
                self.session.add(AgentRecord(slug=entry["slug"], **values))
            else:
                for key, value in values.items():
                    setattr(row, key, value)
            changed += 1
        self.session.flush()
        return changed

    def list(self) -> Sequence[AgentRecord]:
        return self.session.scalars(select(AgentRecord).order_by(AgentRecord.slug)).all()
