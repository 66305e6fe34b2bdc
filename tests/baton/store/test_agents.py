"""Seeding the agent catalog: idempotent, updates what changed, and safe when several seeders
race on the same rows (SQLite and Postgres)."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import select

from baton.db.engine import session_scope
from baton.db.models import AgentRecord
from baton.store.agents import AgentsRepository


def _entry(slug: str, description: str = "an agent") -> dict[str, Any]:
    return {"slug": slug, "type": "llm", "description": description, "config": {"m": 1}}


def _seed(url: str, entries: list[dict[str, Any]]) -> int:
    with session_scope(url) as s:
        return AgentsRepository(s).seed(entries)


def test_seeding_twice_changes_nothing_the_second_time(db_url: str) -> None:
    entries = [_entry("a"), _entry("b")]
    assert _seed(db_url, entries) == 2
    assert _seed(db_url, entries) == 0


def test_a_changed_entry_is_updated_and_counted(db_url: str) -> None:
    _seed(db_url, [_entry("a"), _entry("b")])
    assert _seed(db_url, [_entry("a", "now different"), _entry("b")]) == 1
    with session_scope(db_url) as s:
        row = s.get(AgentRecord, "a")
        assert row is not None
        assert row.description == "now different"
        assert row.config == {"m": 1}


def test_seeders_racing_on_the_same_rows_all_succeed(db_url: str) -> None:
    entries = [_entry(f"agent-{n}") for n in range(20)]
    seeders = 4
    start = threading.Barrier(seeders)
    failures: list[BaseException] = []

    def seed() -> None:
        start.wait()
        try:
            _seed(db_url, entries)
        except BaseException as exc:  # collected, so the assertion shows every failure
            failures.append(exc)

    threads = [threading.Thread(target=seed) for _ in range(seeders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    with session_scope(db_url) as s:
        slugs = s.scalars(select(AgentRecord.slug).order_by(AgentRecord.slug)).all()
    assert slugs == sorted(e["slug"] for e in entries)
