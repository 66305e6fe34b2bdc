"""The API's queries on SQLite and Postgres: organization scope, keyset pages, filters."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from baton.api.queries import (
    RunFilters,
    approvals_page,
    event_cursor,
    events_after,
    runs_page,
    scoped_approval,
    scoped_run,
)
from baton.db.engine import session_scope
from baton.db.models import OrchestrationRun
from baton.store.service import RunStore
from orchestration_defs.language.library import load_text
from tests.baton.api.world import POLICY
from tests.helpers import register

FLOW = """
slug: q
name: Q
version: 1
organization: {org}
steps:
  - id: a
    agent: echo
    with: {{x: 1}}
"""
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _setup(url: str) -> dict[str, list[uuid.UUID]]:
    store = RunStore(url)
    runs: dict[str, list[uuid.UUID]] = {"acme": [], "other": []}
    for org in runs:
        spec, errors = load_text(FLOW.format(org=org), source="q.yaml", known_agents={"echo"})
        assert spec is not None, errors
        register(spec, url)
        for _ in range(5):
            run_id = store.create_run(organization=org, slug="q", version=1, inputs={})
            runs[org].append(run_id)
    # Two runs share a creation time: the id breaks the tie, and no page loses one.
    with session_scope(url) as s:
        for i, run_id in enumerate(runs["acme"]):
            s.execute(
                update(OrchestrationRun)
                .where(OrchestrationRun.id == run_id)
                .values(created_at=T0 + timedelta(minutes=min(i, 3)))
            )
    return runs


def test_runs_pages_cover_everything_once_newest_first(db_url: str) -> None:
    runs = _setup(db_url)
    seen: list[uuid.UUID] = []
    cursor = None
    with session_scope(db_url) as s:
        while True:
            rows, cursor = runs_page(s, "acme", RunFilters(), limit=2, cursor=cursor)
            seen += [r.id for r in rows]
            if cursor is None:
                break
    assert len(seen) == 5 and set(seen) == set(runs["acme"])
    assert seen[:2] == sorted(runs["acme"][3:], reverse=True)  # the tie, by id descending


def test_run_filters_and_scope(db_url: str) -> None:
    runs = _setup(db_url)
    with session_scope(db_url) as s:

        def ids(**filters: object) -> set[uuid.UUID]:
            rows, _ = runs_page(s, "acme", RunFilters(**filters), limit=50, cursor=None)  # type: ignore[arg-type]
            return {r.id for r in rows}

        assert ids() == set(runs["acme"])
        assert ids(status="pending") == set(runs["acme"])
        assert ids(status="failed") == set()
        assert ids(orchestration="q") == set(runs["acme"])
        assert ids(since=T0 + timedelta(minutes=3)) == set(runs["acme"][3:])
        assert ids(until=T0 + timedelta(minutes=1)) == {runs["acme"][0]}
        assert ids(since=(T0 + timedelta(minutes=2)).replace(tzinfo=None)) == set(runs["acme"][2:])
        assert ids(parent=runs["acme"][0]) == set()
        assert scoped_run(s, "acme", runs["acme"][0]) is not None
        assert scoped_run(s, "other", runs["acme"][0]) is None
        assert scoped_run(s, "acme", uuid.uuid4()) is None


def test_events_after_a_sequence_in_one_organization(db_url: str) -> None:
    runs = _setup(db_url)
    with session_scope(db_url) as s:
        acme = events_after(s, "acme", after=0, limit=100)
        assert {e.run_id for e in acme} == set(runs["acme"])
        sequences = [e.sequence for e in acme]
        assert sequences == sorted(sequences)
        later = events_after(s, "acme", after=sequences[1], limit=100)
        assert [e.sequence for e in later] == sequences[2:]
        one = events_after(s, "acme", after=0, limit=100, run_id=runs["acme"][0])
        assert [e.run_id for e in one] == [runs["acme"][0]]
        assert events_after(s, "acme", after=0, limit=100, run_id=runs["other"][0]) == []
    assert event_cursor(None) == 0


def test_approvals_pages_and_scope(db_url: str) -> None:
    from baton.store.approvals import ApprovalsRepository

    runs = _setup(db_url)
    ids = []
    with session_scope(db_url) as s:
        repo = ApprovalsRepository(s)
        for i, run_id in enumerate(runs["acme"][:3]):
            row = repo.add(
                id=uuid.uuid4(),
                run_id=run_id,
                step_id="a",
                status="pending",
                organization="acme",
                policy=POLICY,
                requested_at=T0 + timedelta(seconds=i),
            )
            ids.append(row.id)
    with session_scope(db_url) as s:
        first, cursor = approvals_page(s, "acme", None, limit=2, cursor=None)
        rest, end = approvals_page(s, "acme", None, limit=2, cursor=cursor)
        assert [a.id for a in [*first, *rest]] == ids and end is None
        assert approvals_page(s, "other", None, limit=10, cursor=None)[0] == []
        assert approvals_page(s, "acme", "decided", limit=10, cursor=None)[0] == []
        assert scoped_approval(s, "other", ids[0]) is None
        assert scoped_approval(s, "acme", ids[0]) is not None
