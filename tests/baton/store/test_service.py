"""RunStore: each method one transaction, writing rows and events together."""

from __future__ import annotations

import uuid

import pytest

from baton.db.engine import session_scope
from baton.db.models import OrchestrationDefinition, OrchestrationStep
from baton.secrets import Masker
from baton.state import IllegalTransition
from baton.store.definitions import DefinitionConflict
from baton.store.events import EventsRepository
from baton.store.runs import RunsRepository
from baton.store.service import RunStore, Segment, StepMemo, StepPlan, Superseded, UnknownRun
from baton.store.steps import StepsRepository
from tests.baton.store.factories import ORG, count, spec

SECRET = "hunter2-secret"
PLAN = [StepPlan("greet", "agent", "echo"), StepPlan("shout", "agent", "upper")]


@pytest.fixture
def store(db_url: str) -> RunStore:
    store = RunStore(db_url, masker=Masker([SECRET]))
    register(store)
    return store


def register(store: RunStore, *, version: int = 1, checksum: str = "sum-1") -> int:
    return store.register_definition(
        organization=ORG,
        slug="hello",
        version=version,
        name="Hello",
        spec=spec(),
        checksum=checksum,
        description=None,
        source_path="library/hello.yaml",
    )


def create(store: RunStore) -> uuid.UUID:
    return store.create_run(organization=ORG, slug="hello", version=1, inputs={"name": "Ada"})


def event_types(store: RunStore, run_id: uuid.UUID) -> list[str]:
    with session_scope(store.url) as s:
        return [e.type for e in EventsRepository(s).list(run_id=run_id)]


def test_register_definition_is_idempotent(store: RunStore) -> None:
    first = register(store)
    assert register(store) == first
    assert register(store, version=2, checksum="sum-2") != first
    with session_scope(store.url) as s:
        assert count(s, OrchestrationDefinition) == 2
    with pytest.raises(DefinitionConflict, match="version 1"):
        register(store, checksum="changed")


def test_create_run_writes_the_run_and_its_event(store: RunStore) -> None:
    run_id = store.create_run(
        organization=ORG,
        slug="hello",
        version=1,
        inputs={"name": "Ada", "token": SECRET},
        created_by="ada",
    )
    run = store.get_run(run_id)
    assert (run.status, run.orchestration, run.version, run.created_by) == (
        "pending",
        "hello",
        1,
        "ada",
    )
    assert run.inputs == {"name": "Ada", "token": "***"}
    with session_scope(store.url) as s:
        [event] = EventsRepository(s).list(run_id=run_id)
        assert event.type == "run.created"
        assert event.organization == ORG
        assert event.payload == {"orchestration": "hello", "version": 1, "created_by": "ada"}


def test_create_run_of_an_unknown_definition(store: RunStore) -> None:
    with pytest.raises(LookupError, match="not stored"):
        store.create_run(organization=ORG, slug="hello", version=9, inputs={})


def test_a_run_from_start_to_finish(store: RunStore) -> None:
    run_id = create(store)

    segment = store.begin_segment(run_id=run_id, dagster_run_id="dag-1", steps=PLAN)
    assert segment == Segment(run_id, ORG, "hello", 1, {"name": "Ada"})

    for step_id in ("greet", "shout"):
        attempt = store.start_step(run_id, step_id, input={"text": step_id}, dagster_run_id="dag-1")
        assert attempt == 1
        store.complete_step(run_id, step_id, output={"text": step_id.upper()}, usage={"t": 3})
    store.complete_run(run_id, {"greeting": "SHOUT"})

    detail = store.run_detail(run_id)
    assert detail.run.status == "completed"
    assert detail.run.outputs == {"greeting": "SHOUT"}
    assert detail.run.last_dagster_run_id == "dag-1"
    assert detail.run.started_at is not None and detail.run.finished_at is not None
    assert [(s.step_id, s.position, s.status, s.attempt) for s in detail.steps] == [
        ("greet", 0, "completed", 1),
        ("shout", 1, "completed", 1),
    ]
    assert detail.steps[0].input == {"text": "greet"}
    assert detail.steps[0].output == {"text": "GREET"}
    assert detail.steps[0].dagster_run_id == "dag-1"
    assert [e.type for e in detail.events] == [
        "run.created",
        "run.segment_started",
        "step.started",
        "step.completed",
        "step.started",
        "step.completed",
        "run.completed",
    ]
    by_type = {e.type: e.payload for e in detail.events}
    assert by_type["run.segment_started"] == {"dagster_run_id": "dag-1", "segment": "dag-1"}
    started = {"step_id": "shout", "attempt": 1, "call": 1, "dagster_run_id": "dag-1"}
    assert by_type["step.started"] == started
    completed = {"step_id": "shout", "attempt": 1, "call": 1, "usage": {"t": 3}}
    assert by_type["step.completed"] == completed
    assert by_type["run.completed"] == {"outputs": {"greeting": "SHOUT"}}
    assert all(e.organization == ORG for e in detail.events)
    sequences = [e.sequence for e in detail.events]
    assert sequences == sorted(sequences)


def test_a_second_segment_reuses_the_step_rows(store: RunStore) -> None:
    run_id = create(store)
    store.begin_segment(run_id=run_id, dagster_run_id="dag-1", steps=PLAN)
    store.start_step(run_id, "greet", input=None, dagster_run_id="dag-1")
    store.complete_step(run_id, "greet", output="hi")

    # The worker died; the next segment (made the active one by whoever launched it) finds
    # the run still running.
    with session_scope(store.url) as s:
        RunsRepository(s).force_segment(run_id, "seg-2")
    store.begin_segment(run_id=run_id, dagster_run_id="dag-2", steps=PLAN, segment="seg-2")

    run = store.get_run(run_id)
    assert (run.status, run.last_dagster_run_id) == ("running", "dag-2")
    with session_scope(store.url) as s:
        assert count(s, OrchestrationStep, run_id=run_id) == 2
        assert StepsRepository(s).get(run_id, "greet").status == "completed"  # type: ignore[union-attr]
    assert event_types(store, run_id).count("run.segment_started") == 2


def test_step_failure_then_retry(store: RunStore) -> None:
    run_id = create(store)
    store.begin_segment(run_id=run_id, dagster_run_id="dag-1", steps=PLAN)
    store.start_step(run_id, "greet", input=None, dagster_run_id="dag-1")
    store.fail_step(run_id, "greet", error={"message": f"bad {SECRET}"}, will_retry=True)
    assert store.start_step(run_id, "greet", input=None, dagster_run_id="dag-1") == 2

    with session_scope(store.url) as s:
        failed = [e for e in EventsRepository(s).list(run_id=run_id) if e.type == "step.failed"]
    assert [e.payload for e in failed] == [
        {"step_id": "greet", "attempt": 1, "will_retry": True, "message": "bad ***"}
    ]


def test_fail_run_is_idempotent(store: RunStore) -> None:
    run_id = create(store)
    store.begin_segment(run_id=run_id, dagster_run_id="dag-1", steps=PLAN)

    assert store.fail_run(run_id, {"message": f"died with {SECRET}"}) is True
    assert store.fail_run(run_id, {"message": "again"}) is False

    run = store.get_run(run_id)
    assert run.status == "failed"
    assert run.error == {"message": "died with ***"}
    assert event_types(store, run_id).count("run.failed") == 1


def test_fail_run_ignores_finished_and_unknown_runs(store: RunStore) -> None:
    completed = create(store)
    store.begin_segment(run_id=completed, dagster_run_id="dag-1", steps=[])
    store.complete_run(completed, {})
    assert store.fail_run(completed, {"message": "late"}) is False
    run = store.get_run(completed)
    assert (run.status, run.error) == ("completed", None)
    assert "run.failed" not in event_types(store, completed)

    assert store.fail_run(uuid.uuid4(), {"message": "who"}) is False


def test_fail_run_of_a_pending_run(store: RunStore) -> None:
    run_id = create(store)
    assert store.fail_run(run_id, {"message": "could not launch"}) is True
    assert store.get_run(run_id).status == "failed"


def test_step_memo_only_for_completed_or_skipped_steps(store: RunStore) -> None:
    run_id = create(store)
    plan = [StepPlan(step_id, "agent", "echo") for step_id in ("done", "skip", "fail", "run")]
    store.begin_segment(run_id=run_id, dagster_run_id="dag-1", steps=plan)
    assert store.step_memo(run_id, "done") is None  # pending

    store.start_step(run_id, "done", input=None, dagster_run_id="dag-1")
    store.complete_step(run_id, "done", output={"text": "kept"})
    store.skip_step(run_id, "skip", reason="condition false")
    store.start_step(run_id, "fail", input=None, dagster_run_id="dag-1")
    store.fail_step(run_id, "fail", error={"message": "x"}, will_retry=False)
    store.start_step(run_id, "run", input=None, dagster_run_id="dag-1")

    assert store.step_memo(run_id, "done") == StepMemo("completed", {"text": "kept"})
    assert store.step_memo(run_id, "skip") == StepMemo("skipped", None)
    assert store.step_memo(run_id, "fail") is None
    assert store.step_memo(run_id, "run") is None
    assert store.step_memo(run_id, "missing") is None
    assert store.step_memo(uuid.uuid4(), "done") is None


def test_begin_segment_on_a_completed_run_is_illegal(store: RunStore) -> None:
    run_id = create(store)
    store.begin_segment(run_id=run_id, dagster_run_id="dag-1", steps=PLAN)
    store.complete_run(run_id, {})
    before = event_types(store, run_id)

    with pytest.raises(Superseded):
        store.begin_segment(run_id=run_id, dagster_run_id="dag-2", steps=PLAN)

    run = store.get_run(run_id)
    assert (run.status, run.last_dagster_run_id) == ("completed", "dag-1")
    assert event_types(store, run_id) == before


def test_only_the_active_segment_does_work(store: RunStore) -> None:
    run_id = create(store)
    store.begin_segment(run_id=run_id, dagster_run_id="dag-1", steps=PLAN, segment="seg-1")
    with session_scope(store.url) as s:
        RunsRepository(s).force_segment(run_id, "seg-2")  # a newer launch took over
    with pytest.raises(Superseded, match="seg-2"):
        store.start_step(run_id, "greet", input=None, dagster_run_id="dag-1", segment="seg-1")
    with pytest.raises(Superseded):
        store.begin_segment(run_id=run_id, dagster_run_id="dag-1b", steps=PLAN, segment="seg-1")
    store.begin_segment(run_id=run_id, dagster_run_id="dag-2", steps=PLAN, segment="seg-2")
    assert store.start_step(run_id, "greet", input=None, dagster_run_id="dag-2", segment="seg-2")


def test_of_two_reexecutions_one_takes_over(store: RunStore) -> None:
    run_id = create(store)
    store.begin_segment(run_id=run_id, dagster_run_id="dag-1", steps=PLAN, segment="seg-1")
    store.begin_segment(
        run_id=run_id, dagster_run_id="re-1", steps=PLAN, segment="re-1", takeover_from="seg-1"
    )
    with pytest.raises(Superseded):
        store.begin_segment(
            run_id=run_id, dagster_run_id="re-2", steps=PLAN, segment="re-2", takeover_from="seg-1"
        )
    assert store.get_run(run_id).segment_id == "re-1"


def test_a_segment_of_an_aborted_run_stops_at_its_next_step(store: RunStore) -> None:
    run_id = create(store)
    store.begin_segment(run_id=run_id, dagster_run_id="dag-1", steps=PLAN, segment="seg-1")
    with session_scope(store.url) as s:
        RunsRepository(s).transition(run_id, "aborted", segment_id=None)
    with pytest.raises(Superseded, match="aborted"):
        store.start_step(run_id, "greet", input=None, dagster_run_id="dag-1", segment="seg-1")


def test_begin_segment_on_an_unknown_run(store: RunStore) -> None:
    with pytest.raises(UnknownRun):
        store.begin_segment(run_id=uuid.uuid4(), dagster_run_id="dag-1", steps=PLAN)


def test_unknown_run_lookups(store: RunStore) -> None:
    with pytest.raises(UnknownRun):
        store.get_run(uuid.uuid4())
    with pytest.raises(UnknownRun):
        store.run_detail(uuid.uuid4())


def test_completing_an_unstarted_run_is_illegal_and_writes_nothing(store: RunStore) -> None:
    run_id = create(store)
    with pytest.raises(IllegalTransition):
        store.complete_run(run_id, {"x": 1})
    assert store.get_run(run_id).status == "pending"
    assert event_types(store, run_id) == ["run.created"]


def test_reopen_failed(store: RunStore) -> None:
    run_id = create(store)
    store.begin_segment(run_id=run_id, dagster_run_id="dag-1", steps=PLAN)
    assert store.reopen_failed(run_id, dagster_run_id="dag-2") is False  # running
    store.fail_run(run_id, {"message": "boom"})

    assert store.reopen_failed(run_id, dagster_run_id="dag-2") is True
    assert store.reopen_failed(run_id, dagster_run_id="dag-3") is False

    run = store.get_run(run_id)
    assert (run.status, run.error, run.last_dagster_run_id) == ("running", None, "dag-2")
    assert run.finished_at is None


def test_list_runs_and_children_in_detail(store: RunStore) -> None:
    first, second = create(store), create(store)
    assert [r.id for r in store.list_runs(organization=ORG)] == [second, first]
    assert store.run_detail(first).children == []
