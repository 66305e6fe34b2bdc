"""Retry, skip and abort from every run status x step status, legal and illegal.

The expected table is written out here, independently of ``baton.interventions``: first the
rules as plain functions, then the same table through the lifecycle on a real store (every
case on SQLite, one set on Postgres), which must accept exactly the legal cases, refuse the
others naming the run's (and the step's) state, and record each in the audit log.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import update

from baton.db.models import OrchestrationRun, OrchestrationStep
from baton.interventions import abort_refusal, retry_refusal, skip_refusal
from baton.lifecycle import LifecycleError, Refused
from baton.state import RUN_TRANSITIONS, STEP_TRANSITIONS
from baton.store.audit import AuditRepository
from tests.baton.lifecycle_world import PLAN, World, make_world

RUN_STATUSES = sorted(RUN_TRANSITIONS)
# The operator's view of a step: a failed attempt the reaper ended is "orphaned".
STEP_STATES = [*sorted(STEP_TRANSITIONS), "orphaned"]
UNDER_WAY = {"running", "awaiting_approval", "awaiting_children"}


def legal(action: str, run: str, step: str) -> bool:
    """What an operator may do (issue 11 item 4): retry a failed or orphaned step of a failed
    run; skip one too, or a pending step of a run under way or failed; abort a run not ended."""
    if action == "abort":
        return run in UNDER_WAY | {"pending"}
    stopped = run == "failed" and step in ("failed", "orphaned")
    if action == "retry":
        return stopped
    return stopped or (step == "pending" and run in UNDER_WAY | {"failed"})


CASES = [
    (action, run, step)
    for action in ("retry", "skip")
    for run in RUN_STATUSES
    for step in STEP_STATES
] + [("abort", run, None) for run in RUN_STATUSES]


def test_the_table_covers_every_status_of_the_state_machines() -> None:
    assert set(RUN_STATUSES) == {
        "pending",
        "running",
        "awaiting_approval",
        "awaiting_children",
        "completed",
        "failed",
        "aborted",
    }
    assert {"cancelled", "compensated", "waiting"} <= set(STEP_STATES)
    accepted = [c for c in CASES if legal(c[0], c[1], c[2] or "")]
    assert len(accepted) == 2 + 6 + 4  # retry 2, skip 2 + 4 pending, abort 4


@pytest.mark.parametrize(("action", "run", "step"), CASES)
def test_the_rules_accept_the_legal_and_name_the_state_when_refusing(
    action: str, run: str, step: str | None
) -> None:
    if action == "abort":
        refusal = abort_refusal(run, "r1")
    else:
        rule = retry_refusal if action == "retry" else skip_refusal
        refusal = rule(run, step or "", "draft")
    if legal(action, run, step or ""):
        assert refusal is None
        return
    assert refusal is not None
    assert f"is {run}" in refusal
    if step is not None:
        assert f"'draft' is {step}" in refusal


def _set_up(world: World, run_status: str, step_state: str) -> uuid.UUID:
    """A run in ``run_status`` whose step ``draft`` is in ``step_state`` (set directly: the
    point is the action's check, not the way there)."""
    store = world.store
    run_id = store.create_run(
        organization="global", slug="review", version=1, inputs={"topic": "t"}, created_by="zed"
    )
    store.begin_segment(run_id=run_id, dagster_run_id="dag-1", steps=PLAN)
    status, error = step_state, None
    if step_state in ("failed", "orphaned"):
        status = "failed"
        kind = "orphaned" if step_state == "orphaned" else "AgentError"
        error = {"message": "x", "kind": kind}
    with store.session() as s:
        s.execute(
            update(OrchestrationStep)
            .where(OrchestrationStep.run_id == run_id, OrchestrationStep.step_id == "draft")
            .values(status=status, error=error)
        )
        s.execute(
            update(OrchestrationRun)
            .where(OrchestrationRun.id == run_id)
            .values(status=run_status, segment_id=None)
        )
    return run_id


def _act(world: World, action: str, run_id: uuid.UUID) -> Any:
    lifecycle = world.lifecycle()
    if action == "abort":
        return lifecycle.abort(run_id, by="ops", reason="why not")
    if action == "retry":
        return lifecycle.retry_step(run_id, "draft", by="ops", reason="why not")
    return lifecycle.skip_step(run_id, "draft", by="ops", output={"t": 1}, reason="why not")


def _check_table(world: World, cases: list[tuple[str, str, str | None]]) -> None:
    wrong = []
    for action, run, step in cases:
        run_id = _set_up(world, run, step or "completed")
        try:
            _act(world, action, run_id)
            outcome, message = "accepted", ""
        except Refused as exc:
            outcome, message = "refused", str(exc)
        except LifecycleError as exc:  # not a refusal of the state: always wrong here
            outcome, message = f"error {exc.code}", str(exc)
        expected = "accepted" if legal(action, run, step or "") else "refused"
        names_state = outcome == "accepted" or (
            f"is {run}" in message and (step is None or f"'draft' is {step}" in message)
        )
        with world.store.session() as s:
            audit = [(a.action, a.outcome, a.reason) for a in AuditRepository(s).list(run_id)]
        if outcome != expected or not names_state or audit != [(action, expected, "why not")]:
            wrong.append((action, run, step, outcome, message, audit))
    assert wrong == []


@pytest.fixture
def sqlite_world(sqlite_db: str) -> Iterator[World]:
    yield from make_world(sqlite_db)


@pytest.mark.parametrize("action", ["retry", "skip", "abort"])
def test_every_state_through_the_lifecycle_on_sqlite(sqlite_world: World, action: str) -> None:
    _check_table(sqlite_world, [c for c in CASES if c[0] == action])
    legal_cases = [c for c in CASES if c[0] == action and legal(c[0], c[1], c[2] or "")]
    # Exactly the legal retries and skips of a failed run start a segment (a skip ahead or
    # an abort starts none).
    continuing = [
        c for c in legal_cases if c[0] != "abort" and c[1] == "failed" and c[2] != "pending"
    ]
    assert len(sqlite_world.recorder.launches) == len(continuing)


@pytest.mark.postgres
def test_one_set_through_the_lifecycle_on_postgres(pg_db: str) -> None:
    for world in make_world(pg_db):
        _check_table(
            world,
            [
                ("retry", "failed", "orphaned"),
                ("retry", "running", "failed"),
                ("skip", "awaiting_approval", "pending"),
                ("skip", "completed", "failed"),
                ("abort", "awaiting_children", None),
                ("abort", "aborted", None),
            ],
        )
