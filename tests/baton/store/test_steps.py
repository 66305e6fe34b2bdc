"""Steps: idempotent creation, ordering, attempts, transitions and the outputs memo."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from baton.db.engine import get_engine, session_scope
from baton.db.models import OrchestrationStep
from baton.state import IllegalTransition
from baton.store.steps import StepsRepository
from tests.baton.store.factories import count, make_run


@pytest.fixture
def run_id(session: Session) -> uuid.UUID:
    return make_run(session).id


def _ensure(repo: StepsRepository, run_id: uuid.UUID, step_id: str, position: int = 0) -> None:
    repo.ensure(run_id, step_id, position=position, kind="agent", agent="echo")


def test_ensure_creates_a_pending_step(session: Session, run_id: uuid.UUID) -> None:
    row = StepsRepository(session).ensure(
        run_id, "greet", position=3, kind="checkpoint", agent=None
    )
    assert (row.run_id, row.step_id, row.position, row.kind, row.agent) == (
        run_id,
        "greet",
        3,
        "checkpoint",
        None,
    )
    assert (row.status, row.attempt, row.output, row.started_at) == ("pending", 0, None, None)


def test_ensure_is_idempotent(db_url: str) -> None:
    with session_scope(db_url) as s:
        run_id = make_run(s).id
        first = StepsRepository(s).ensure(run_id, "greet", position=0, kind="agent", agent="a")
        first_id = first.id
        again = StepsRepository(s).ensure(run_id, "greet", position=5, kind="agent", agent="b")
        assert again.id == first_id

    # A later segment (new session) gets the same row, unchanged.
    with session_scope(db_url) as s:
        steps = StepsRepository(s)
        steps.transition(run_id, "greet", "running")
        row = steps.ensure(run_id, "greet", position=9, kind="other", agent=None)
        assert (row.id, row.position, row.agent, row.status) == (first_id, 0, "a", "running")
        assert count(s, OrchestrationStep, run_id=run_id) == 1


def test_same_step_id_in_two_runs(session: Session, run_id: uuid.UUID) -> None:
    other = make_run(session).id
    steps = StepsRepository(session)
    _ensure(steps, run_id, "greet")
    _ensure(steps, other, "greet")
    assert count(session, OrchestrationStep, step_id="greet") == 2


def test_list_orders_by_position(session: Session, run_id: uuid.UUID) -> None:
    steps = StepsRepository(session)
    for step_id, position in (("c", 2), ("a", 0), ("b", 1)):
        _ensure(steps, run_id, step_id, position)
    _ensure(steps, make_run(session).id, "elsewhere")
    assert [s.step_id for s in steps.list(run_id)] == ["a", "b", "c"]
    assert steps.list(uuid.uuid4()) == []


def test_start_attempt_counts_attempts(session: Session, run_id: uuid.UUID) -> None:
    steps = StepsRepository(session)
    _ensure(steps, run_id, "greet")

    first = steps.start_attempt(run_id, "greet", input={"text": "hi"}, dagster_run_id="d1")
    assert (first.status, first.attempt, first.input, first.dagster_run_id) == (
        "running",
        1,
        {"text": "hi"},
        "d1",
    )
    assert first.started_at is not None and first.finished_at is None

    failed = steps.transition(run_id, "greet", "failed", error={"message": "boom"})
    assert failed.finished_at is not None

    second = steps.start_attempt(run_id, "greet", input={"text": "again"}, dagster_run_id="d2")
    assert (second.attempt, second.input, second.dagster_run_id) == (2, {"text": "again"}, "d2")
    assert second.error is None and second.finished_at is None

    # A worker died mid-attempt: running -> running starts attempt 3.
    third = steps.start_attempt(run_id, "greet", input=None, dagster_run_id="d3")
    assert (third.status, third.attempt) == ("running", 3)


def test_start_attempt_of_a_missing_step(session: Session, run_id: uuid.UUID) -> None:
    with pytest.raises(IllegalTransition, match="cannot go from missing to running"):
        StepsRepository(session).start_attempt(run_id, "nope", input=None, dagster_run_id=None)


def test_complete_stores_output(db_url: str) -> None:
    with session_scope(db_url) as s:
        run_id = make_run(s).id
        steps = StepsRepository(s)
        _ensure(steps, run_id, "greet")
        steps.start_attempt(run_id, "greet", input="hi", dagster_run_id="d1")
        row = steps.transition(run_id, "greet", "completed", output={"text": "Hello"})
        assert row.status == "completed" and row.finished_at is not None

    with session_scope(db_url) as s:
        row = StepsRepository(s).get(run_id, "greet")
        assert row is not None
        assert (row.status, row.output, row.attempt) == ("completed", {"text": "Hello"}, 1)


def test_skip_from_pending(session: Session, run_id: uuid.UUID) -> None:
    steps = StepsRepository(session)
    _ensure(steps, run_id, "maybe")
    row = steps.transition(run_id, "maybe", "skipped", error={"reason": "condition false"})
    assert (row.status, row.attempt) == ("skipped", 0)
    assert row.finished_at is not None


def test_waiting_step_completes(session: Session, run_id: uuid.UUID) -> None:
    steps = StepsRepository(session)
    _ensure(steps, run_id, "approve")
    steps.start_attempt(run_id, "approve", input=None, dagster_run_id="d1")
    assert steps.transition(run_id, "approve", "waiting").status == "waiting"
    done = steps.transition(run_id, "approve", "completed", output={"decision": "approve"})
    assert done.output == {"decision": "approve"}


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ((), "completed"),
        (("running", "completed"), "running"),
        (("running", "completed"), "failed"),
        (("skipped",), "running"),
        (("skipped",), "completed"),
        (("running", "failed"), "completed"),
    ],
)
def test_illegal_step_transition_leaves_the_row(
    session: Session, run_id: uuid.UUID, path: tuple[str, ...], target: str
) -> None:
    steps = StepsRepository(session)
    _ensure(steps, run_id, "greet")
    for status in path:
        steps.transition(run_id, "greet", status, output={"at": status})
    before = steps.get(run_id, "greet")
    assert before is not None
    snapshot = (before.status, before.output, before.updated_at)

    with pytest.raises(IllegalTransition) as excinfo:
        steps.transition(run_id, "greet", target, output={"at": "illegal"})

    assert excinfo.value.current == (path[-1] if path else "pending")
    after = steps.get(run_id, "greet")
    assert after is not None
    assert (after.status, after.output, after.updated_at) == snapshot


def test_transition_of_a_missing_step(session: Session, run_id: uuid.UUID) -> None:
    with pytest.raises(IllegalTransition) as excinfo:
        StepsRepository(session).transition(run_id, "nope", "completed")
    assert excinfo.value.current is None


def test_outputs_are_those_of_completed_steps(session: Session, run_id: uuid.UUID) -> None:
    steps = StepsRepository(session)
    for position, step_id in enumerate(("done", "also_done", "skipped", "failed", "pending")):
        _ensure(steps, run_id, step_id, position)
    for step_id in ("done", "also_done", "failed"):
        steps.start_attempt(run_id, step_id, input=None, dagster_run_id="d1")
    steps.transition(run_id, "done", "completed", output={"text": "one"})
    steps.transition(run_id, "also_done", "completed", output=["a", 2])
    steps.transition(run_id, "skipped", "skipped")
    steps.transition(run_id, "failed", "failed", output={"partial": True})
    other_run = make_run(session).id
    _ensure(steps, other_run, "done")

    assert steps.outputs(run_id) == {"done": {"text": "one"}, "also_done": ["a", 2]}
    assert steps.outputs(other_run) == {}


def _new_run(db_url: str) -> uuid.UUID:
    with session_scope(db_url) as s:
        return make_run(s).id


def _started(db_url: str, run_id: uuid.UUID, owner: str = "dagster-1") -> int:
    with session_scope(db_url) as s:
        repo = StepsRepository(s)
        _ensure(repo, run_id, "slow")
        return repo.start_attempt(run_id, "slow", input={}, dagster_run_id=owner).attempt


def test_an_attempt_starts_its_lease_with_its_owner(db_url: str) -> None:
    run_id = _new_run(db_url)
    _started(db_url, run_id)
    with session_scope(db_url) as s:
        row = StepsRepository(s).get(run_id, "slow")
        assert row is not None
        assert (row.status, row.dagster_run_id) == ("running", "dagster-1")
        assert row.heartbeat_at is not None


def test_only_the_owner_of_the_running_attempt_renews_it(db_url: str) -> None:
    run_id = _new_run(db_url)
    attempt = _started(db_url, run_id)
    with session_scope(db_url) as s:
        repo = StepsRepository(s)
        assert repo.heartbeat(run_id, "slow", attempt=attempt, owner="dagster-1")
        assert not repo.heartbeat(run_id, "slow", attempt=attempt, owner="dagster-2")
        assert not repo.heartbeat(run_id, "slow", attempt=attempt + 1, owner="dagster-1")


def test_an_orphan_is_failed_only_while_it_is_still_that_attempt(
    db_url: str,
) -> None:
    run_id = _new_run(db_url)
    first = _started(db_url, run_id)
    with session_scope(db_url) as s:  # a new worker took the step over meanwhile
        StepsRepository(s).start_attempt(run_id, "slow", input={}, dagster_run_id="dagster-2")
    error = {"message": "gone"}
    with session_scope(db_url) as s:
        repo = StepsRepository(s)
        assert not repo.fail_orphan(run_id, "slow", attempt=first, owner="dagster-1", error=error)
        assert repo.fail_orphan(run_id, "slow", attempt=first + 1, owner="dagster-2", error=error)
        row = repo.get(run_id, "slow")
        assert row is not None and (row.status, row.error) == ("failed", error)
        assert row.finished_at is not None
        # Twice is a no-op: the CAS requires it running.
        assert not repo.fail_orphan(
            run_id, "slow", attempt=first + 1, owner="dagster-2", error=error
        )
        assert [r.step_id for r in repo.running()] == []


def test_transitions_work_on_a_sqlite_without_returning(
    sqlite_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite before 3.35 (Debian 11 and RHEL 9 ship 3.34) has no UPDATE ... RETURNING, and
    SQLAlchemy writes it all the same: a move is then an UPDATE and a SELECT."""
    engine = get_engine(sqlite_db)
    for flag in ("insert_returning", "update_returning", "delete_returning"):
        monkeypatch.setattr(engine.dialect, flag, False)  # what SQLAlchemy sets for such a SQLite
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        _moves_without_returning(sqlite_db)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert statements and not [s for s in statements if "RETURNING" in s.upper()]


def _moves_without_returning(sqlite_db: str) -> None:
    with session_scope(sqlite_db) as s:
        run_id = make_run(s).id
        steps = StepsRepository(s)
        _ensure(steps, run_id, "greet")
        row = steps.start_attempt(run_id, "greet", input={"n": 1}, dagster_run_id="dag-1")
        assert (row.status, row.attempt, row.input) == ("running", 1, {"n": 1})
        row = steps.transition(run_id, "greet", "completed", output={"ok": True})
        assert (row.status, row.output) == ("completed", {"ok": True})
        with pytest.raises(IllegalTransition) as excinfo:
            steps.transition(run_id, "greet", "running")
        assert excinfo.value.current == "completed"
