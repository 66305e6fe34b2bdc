"""Migration 0013 (a step's retry_at): an orphan failed before it with a policy retry still to
come keeps it, its moment copied from its error to the column the reaper reads."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from baton.db import migrate
from baton.db.engine import session_scope
from baton.store.service import RunStore, StepPlan
from baton.store.steps import StepsRepository
from orchestration_defs.language.library import load_text
from tests.helpers import register

FLOW = """
slug: two
name: Two
version: 1
steps:
  - id: a
    agent: echo
  - id: b
    agent: echo
"""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


def _orphans(url: str, due: datetime) -> uuid.UUID:
    """A run whose ``a`` was orphaned for good and ``b`` orphaned with a retry due at ``due``."""
    spec, _ = load_text(FLOW, source="t.yaml", known_agents={"echo"})
    assert spec is not None
    register(spec, url)
    store = RunStore(url)
    run_id = store.create_run(organization="global", slug="two", version=1, inputs={})
    plans = [StepPlan("a", "agent", "echo"), StepPlan("b", "agent", "echo")]
    store.begin_segment(run_id=run_id, dagster_run_id="owner", steps=plans)
    for step_id, will_retry in (("a", False), ("b", True)):
        store.start_step(run_id, step_id, input={}, dagster_run_id="owner")
        error = {"kind": "orphaned", "will_retry": will_retry}
        if will_retry:
            error["retry_at"] = due.isoformat()
        with session_scope(url) as s:
            assert StepsRepository(s).fail_orphan(
                run_id, step_id, attempt=1, owner="owner", error=error
            )
    return run_id


def test_upgrade_copies_a_pending_policy_retry_to_retry_at(url: str) -> None:
    migrate.upgrade(url)
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=30)
    run_id = _orphans(url, due)
    migrate.downgrade(url, "0012")  # as a database before 0013 holds them: on the error only

    migrate.upgrade(url)

    with session_scope(url) as s:
        steps = StepsRepository(s)
        a, b = steps.get(run_id, "a"), steps.get(run_id, "b")
        assert a is not None and b is not None
        assert a.retry_at is None
        assert b.retry_at is not None
        assert b.retry_at.replace(tzinfo=b.retry_at.tzinfo or UTC) == due


def test_upgrade_passes_over_a_retry_at_it_cannot_read(url: str) -> None:
    migrate.upgrade(url)
    run_id = _orphans(url, datetime.now(UTC))
    with session_scope(url) as s:
        step = StepsRepository(s).get(run_id, "b")
        assert step is not None
        step.error = {**(step.error or {}), "retry_at": "next tuesday"}
    migrate.downgrade(url, "0012")

    migrate.upgrade(url)  # does not fail on it

    with session_scope(url) as s:
        b = StepsRepository(s).get(run_id, "b")
        assert b is not None and b.retry_at is None
