"""Runs: guarded status changes, lineage, soft delete and cascades."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from baton.db.engine import session_scope
from baton.db.models import (
    Deliverable,
    HumanApproval,
    OrchestrationDefinition,
    OrchestrationEvent,
    OrchestrationRun,
    OrchestrationStep,
)
from baton.state import IllegalTransition
from baton.store.events import EventsRepository
from baton.store.runs import RunsRepository
from baton.store.steps import StepsRepository
from tests.baton.store.factories import ORG, count, make_definition, make_run


def test_create_is_pending_and_copies_the_definition(session: Session) -> None:
    definition = make_definition(session, slug="greet", version=4)
    run = RunsRepository(session).create(
        definition, inputs={"name": "Ada", "n": [1, 2]}, created_by="ada@example.com"
    )

    assert isinstance(run.id, uuid.UUID)
    assert run.status == "pending"
    assert run.definition_id == definition.id
    assert (run.organization, run.orchestration, run.version) == (ORG, "greet", 4)
    assert run.inputs == {"name": "Ada", "n": [1, 2]}
    assert run.created_by == "ada@example.com"
    assert run.parent_run_id is None and run.root_run_id is None
    assert run.started_at is None and run.finished_at is None and run.deleted_at is None
    assert run.created_at is not None


def test_create_with_a_chosen_id(session: Session) -> None:
    run_id = uuid.uuid4()
    run = RunsRepository(session).create(make_definition(session), inputs={}, run_id=run_id)
    assert run.id == run_id
    assert RunsRepository(session).get(run_id) is run


def test_lifecycle_pending_running_completed(db_url: str) -> None:
    with session_scope(db_url) as s:
        run_id = make_run(s).id

    with session_scope(db_url) as s:
        running = RunsRepository(s).transition(run_id, "running")
        assert running.status == "running"
        assert running.started_at is not None
        assert running.finished_at is None

    with session_scope(db_url) as s:
        done = RunsRepository(s).transition(run_id, "completed", outputs={"greeting": "Hi"})
        assert done.status == "completed"
        assert done.outputs == {"greeting": "Hi"}
        assert done.finished_at is not None

    with session_scope(db_url) as s:
        stored = RunsRepository(s).get(run_id)
        assert stored is not None
        assert stored.status == "completed"
        assert stored.outputs == {"greeting": "Hi"}
        assert stored.started_at is not None
        assert stored.started_at <= stored.finished_at  # type: ignore[operator]


def test_pause_and_resume_through_awaiting_approval(session: Session) -> None:
    runs = RunsRepository(session)
    run_id = make_run(session).id
    for target in ("running", "awaiting_approval", "running", "completed"):
        assert runs.transition(run_id, target).status == target


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ((), "completed"),
        ((), "awaiting_approval"),
        ((), "pending"),
        (("running",), "running"),
        (("running",), "pending"),
        (("running", "completed"), "running"),
        (("running", "completed"), "failed"),
        (("aborted",), "running"),
        (("failed",), "completed"),
    ],
)
def test_illegal_transition_raises_and_leaves_the_row(
    db_url: str, path: tuple[str, ...], target: str
) -> None:
    with session_scope(db_url) as s:
        run_id = make_run(s).id
        for status in path:
            RunsRepository(s).transition(run_id, status, outputs={"at": status})

    with session_scope(db_url) as s:
        before = RunsRepository(s).get(run_id)
        assert before is not None
        snapshot = (before.status, before.outputs, before.updated_at, before.finished_at)

    with session_scope(db_url) as s:
        with pytest.raises(IllegalTransition) as excinfo:
            RunsRepository(s).transition(run_id, target, outputs={"at": "illegal"})
        expected_current = path[-1] if path else "pending"
        assert excinfo.value.current == expected_current
        assert excinfo.value.target == target
        assert f"cannot go from {expected_current} to {target}" in str(excinfo.value)

    with session_scope(db_url) as s:
        after = RunsRepository(s).get(run_id)
        assert after is not None
        assert (after.status, after.outputs, after.updated_at, after.finished_at) == snapshot


def test_transition_of_a_missing_run(session: Session) -> None:
    with pytest.raises(IllegalTransition, match="cannot go from missing to running") as excinfo:
        RunsRepository(session).transition(uuid.uuid4(), "running")
    assert excinfo.value.current is None


def test_racing_transitions_only_one_wins(db_url: str) -> None:
    with session_scope(db_url) as s:
        run_id = make_run(s).id
        RunsRepository(s).transition(run_id, "running")
        RunsRepository(s).transition(run_id, "awaiting_approval")

    # Two resumers both see the run awaiting approval, then both try to resume it.
    with session_scope(db_url) as first, session_scope(db_url) as second:
        for s in (first, second):
            seen = RunsRepository(s).get(run_id)
            assert seen is not None and seen.status == "awaiting_approval"
        winner = RunsRepository(first).transition(run_id, "running", last_dagster_run_id="d1")
        assert winner.status == "running"
        first.commit()

        with pytest.raises(IllegalTransition) as excinfo:
            RunsRepository(second).transition(run_id, "running", last_dagster_run_id="d2")
        assert excinfo.value.current == "running"

    with session_scope(db_url) as s:
        run = RunsRepository(s).get(run_id)
        assert run is not None
        assert (run.status, run.last_dagster_run_id) == ("running", "d1")


def test_the_same_guarded_update_twice(session: Session) -> None:
    runs = RunsRepository(session)
    run_id = make_run(session).id
    runs.transition(run_id, "running")
    with pytest.raises(IllegalTransition):
        runs.transition(run_id, "running")
    runs.transition(run_id, "aborted")
    with pytest.raises(IllegalTransition):
        runs.transition(run_id, "aborted")
    assert runs.get(run_id).status == "aborted"  # type: ignore[union-attr]


def test_failed_run_can_be_retried(session: Session) -> None:
    runs = RunsRepository(session)
    run_id = make_run(session).id
    runs.transition(run_id, "running")
    failed = runs.transition(run_id, "failed", error={"message": "boom"})
    assert failed.finished_at is not None
    retried = runs.transition(run_id, "running", error=None)
    assert retried.status == "running"
    assert retried.error is None
    # Running again means not finished: the failure's finish time must not linger.
    assert retried.finished_at is None
    assert runs.transition(run_id, "completed").finished_at is not None


def test_set_dagster_run(session: Session) -> None:
    runs = RunsRepository(session)
    run_id = make_run(session).id
    runs.set_dagster_run(run_id, "dagster-1")
    assert runs.get(run_id).last_dagster_run_id == "dagster-1"  # type: ignore[union-attr]


def test_parent_child_and_root_linkage(session: Session) -> None:
    runs = RunsRepository(session)
    root = make_run(session)
    child_a = make_run(session, parent=root)
    child_b = make_run(session, parent=root)
    grandchild = make_run(session, parent=child_a)
    other_root = make_run(session)

    assert (child_a.parent_run_id, child_a.root_run_id) == (root.id, root.id)
    assert child_a.parent_step_id == "spawn"
    assert (grandchild.parent_run_id, grandchild.root_run_id) == (child_a.id, root.id)

    assert [r.id for r in runs.children(root.id)] == [child_a.id, child_b.id]
    assert [r.id for r in runs.children(child_a.id)] == [grandchild.id]
    assert runs.children(grandchild.id) == []
    assert [r.id for r in runs.descendants(root.id)] == [child_a.id, child_b.id, grandchild.id]
    assert runs.descendants(other_root.id) == []
    assert {r.id for r in runs.list(parent_run_id=root.id)} == {child_a.id, child_b.id}


def test_list_filters_newest_first_and_pages(session: Session) -> None:
    runs = RunsRepository(session)
    hello = make_definition(session)
    other = make_definition(session, slug="other")
    globex = make_definition(session, organization="globex")
    first = make_run(session, hello)
    second = make_run(session, other)
    third = make_run(session, hello)
    foreign = make_run(session, globex)
    runs.transition(second.id, "running")

    assert [r.id for r in runs.list(organization=ORG)] == [third.id, second.id, first.id]
    assert [r.id for r in runs.list()] == [foreign.id, third.id, second.id, first.id]
    assert [r.id for r in runs.list(organization=ORG, limit=2)] == [third.id, second.id]
    assert [r.id for r in runs.list(organization=ORG, limit=2, offset=2)] == [first.id]
    assert [r.id for r in runs.list(status="running")] == [second.id]
    assert [r.id for r in runs.list(organization=ORG, orchestration="hello")] == [
        third.id,
        first.id,
    ]


def test_soft_delete_hides_the_run_and_its_descendants(db_url: str) -> None:
    with session_scope(db_url) as s:
        root = make_run(s)
        child = make_run(s, parent=root)
        sibling = make_run(s, parent=root)
        grandchild = make_run(s, parent=child)
        great_grandchild = make_run(s, parent=grandchild)
        hidden = {child.id, grandchild.id, great_grandchild.id}

    with session_scope(db_url) as s:
        RunsRepository(s).soft_delete(child.id)

    with session_scope(db_url) as s:
        runs = RunsRepository(s)
        for run_id in hidden:
            assert runs.get(run_id) is None
            found = runs.get(run_id, include_deleted=True)
            assert found is not None and found.deleted_at is not None
        assert {r.id for r in runs.list()} == {root.id, sibling.id}
        assert [r.id for r in runs.children(root.id)] == [sibling.id]
        assert [r.id for r in runs.descendants(root.id)] == [sibling.id]
        assert runs.get(root.id) is not None
        # Soft delete keeps the rows.
        assert count(s, OrchestrationRun) == 5


def test_soft_delete_of_a_root_hides_the_whole_tree(session: Session) -> None:
    runs = RunsRepository(session)
    root = make_run(session)
    child = make_run(session, parent=root)
    make_run(session, parent=child)
    survivor = make_run(session)

    runs.soft_delete(root.id)

    assert [r.id for r in runs.list()] == [survivor.id]
    assert runs.get(root.id, include_deleted=True) is not None


def test_deleting_a_run_deletes_what_belongs_to_it(db_url: str) -> None:
    with session_scope(db_url) as s:
        run = make_run(s)
        child = make_run(s, parent=run)
        keep = make_run(s)
        for run_id in (run.id, keep.id):
            StepsRepository(s).ensure(run_id, "greet", position=0, kind="agent", agent="echo")
            EventsRepository(s).append(organization=ORG, type="run.created", run_id=run_id)
            s.add(HumanApproval(run_id=run_id, step_id="greet"))
            s.add(Deliverable(run_id=run_id, step_id="greet", name="note", type="text"))
        EventsRepository(s).append(organization=ORG, type="run.created", run_id=child.id)
        run_id, child_id, keep_id = run.id, child.id, keep.id

    with session_scope(db_url) as s:
        s.execute(delete(OrchestrationRun).where(OrchestrationRun.id == run_id))

    with session_scope(db_url) as s:
        for model in (OrchestrationStep, HumanApproval, OrchestrationEvent, Deliverable):
            assert count(s, model, run_id=run_id) == 0, model.__tablename__
            assert count(s, model, run_id=keep_id) == 1, model.__tablename__
        assert count(s, OrchestrationEvent, run_id=child_id) == 0
        remaining = set(s.scalars(select(OrchestrationRun.id)))
        assert remaining == {keep_id}


def test_a_definition_with_runs_cannot_be_deleted(db_url: str) -> None:
    with session_scope(db_url) as s:
        definition_id = make_run(s).definition_id

    with pytest.raises(IntegrityError), session_scope(db_url) as s:
        s.execute(
            delete(OrchestrationDefinition).where(OrchestrationDefinition.id == definition_id)
        )
        s.flush()

    with session_scope(db_url) as s:
        assert count(s, OrchestrationDefinition, id=definition_id) == 1
        assert count(s, OrchestrationRun, definition_id=definition_id) == 1
