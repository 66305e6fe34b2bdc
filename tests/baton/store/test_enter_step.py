"""RunStore.enter_step: an agent step's way in (memo, skip or a new attempt) in one transaction.

Each case is what the step op did before it was one transaction (a read of the memo, the
replacement and the override, then a skip or a start): the stored input, the input the call
uses, the refusals.
"""

from __future__ import annotations

import uuid

import pytest

from baton.db.engine import session_scope
from baton.secrets import Masker
from baton.state import IllegalTransition
from baton.store.events import EventsRepository
from baton.store.runs import RunsRepository
from baton.store.service import RunStore, StepEntry, StepMemo, StepPlan, Superseded
from baton.store.steps import StepsRepository
from tests.baton.store.factories import ORG, spec

SECRET = "hunter2-secret"
PLAN = [StepPlan("greet", "agent", "echo")]


@pytest.fixture
def store(db_url: str) -> RunStore:
    store = RunStore(db_url, masker=Masker([SECRET]))
    store.register_definition(
        organization=ORG,
        slug="hello",
        version=1,
        name="Hello",
        spec=spec(),
        checksum="sum-1",
        description=None,
        source_path=None,
    )
    return store


def _run(store: RunStore, segment: str | None = "seg-1") -> uuid.UUID:
    run_id = store.create_run(organization=ORG, slug="hello", version=1, inputs={"name": "Ada"})
    store.begin_segment(run_id=run_id, dagster_run_id="dag-1", steps=PLAN, segment=segment)
    return run_id


def _enter(
    store: RunStore,
    run_id: uuid.UUID,
    rendered: object,
    *,
    skip: str | None = None,
    segment: str = "seg-1",
) -> StepEntry:
    return store.enter_step(
        run_id, "greet", rendered=rendered, skip=skip, dagster_run_id="dag-1", segment=segment
    )


def _stored_input(store: RunStore, run_id: uuid.UUID) -> object:
    with session_scope(store.url) as s:
        row = StepsRepository(s).get(run_id, "greet")
        assert row is not None
        return row.input


def _events(store: RunStore, run_id: uuid.UUID) -> list[str]:
    with session_scope(store.url) as s:
        return [e.type for e in EventsRepository(s).list(run_id=run_id)]


def test_a_new_step_starts_with_the_rendered_input(store: RunStore) -> None:
    run_id = _run(store)
    entry = _enter(store, run_id, {"text": f"hi {SECRET}"})
    assert entry.started is not None and (entry.started.attempt, entry.started.call) == (1, 1)
    assert entry.input == {"text": f"hi {SECRET}"}  # the call gets the real value
    assert _stored_input(store, run_id) == {"text": "hi ***"}  # the store never does
    assert _events(store, run_id)[-1] == "step.started"


def test_an_operators_replacement_wins_and_an_approvers_changes_lie_over_it(
    store: RunStore,
) -> None:
    run_id = _run(store)
    with session_scope(store.url) as s:
        StepsRepository(s).set_input_replacement(run_id, "greet", {"text": "new", "n": 1})
        StepsRepository(s).set_input_override(run_id, "greet", {"n": 2})
    entry = _enter(store, run_id, {"text": "rendered"})
    assert entry.input == {"text": "new", "n": 2}
    assert _stored_input(store, run_id) == {"text": "new", "n": 2}


def test_an_approvers_changes_lie_over_the_rendered_input(store: RunStore) -> None:
    run_id = _run(store)
    with session_scope(store.url) as s:
        StepsRepository(s).set_input_override(run_id, "greet", {"tone": "calm"})
    entry = _enter(store, run_id, {"text": "rendered", "tone": "loud"})
    assert entry.input == {"text": "rendered", "tone": "calm"}
    assert _stored_input(store, run_id) == {"text": "rendered", "tone": "calm"}


def test_a_done_step_returns_its_memo_and_writes_nothing(store: RunStore) -> None:
    run_id = _run(store)
    _enter(store, run_id, {"text": "a"})
    store.complete_step(run_id, "greet", output={"text": "A"})
    before = _events(store, run_id)
    assert _enter(store, run_id, {"text": "b"}).memo == StepMemo("completed", {"text": "A"})
    assert _enter(store, run_id, None, skip="condition is false").memo == StepMemo(
        "completed", {"text": "A"}
    )
    assert _stored_input(store, run_id) == {"text": "a"}
    assert _events(store, run_id) == before


def test_an_operators_skip_before_the_entry_is_its_memo(store: RunStore) -> None:
    run_id = _run(store)
    store.skip_step(run_id, "greet", reason="by ops")
    entry = _enter(store, run_id, {"text": "a"})
    assert entry.memo is not None and entry.memo.status == "skipped"
    assert entry.started is None


def test_a_skip_is_recorded_with_its_reason(store: RunStore) -> None:
    run_id = _run(store)
    assert _enter(store, run_id, None, skip="condition is false: no").skipped
    assert store.step_memo(run_id, "greet") == StepMemo("skipped", None)
    assert _events(store, run_id)[-1] == "step.skipped"


def test_a_superseded_or_ended_segment_starts_nothing(store: RunStore) -> None:
    run_id = _run(store)
    with session_scope(store.url) as s:
        RunsRepository(s).force_segment(run_id, "seg-2")
    with pytest.raises(Superseded, match="seg-2"):
        _enter(store, run_id, {"text": "a"})
    with session_scope(store.url) as s:
        RunsRepository(s).transition(run_id, "aborted", segment_id=None)
    with pytest.raises(Superseded, match="aborted"):
        _enter(store, run_id, {"text": "a"}, segment="seg-2")
    with session_scope(store.url) as s:
        row = StepsRepository(s).get(run_id, "greet")
        assert row is not None and (row.status, row.attempt) == ("pending", 0)


def test_a_superseded_or_ended_segment_skips_nothing(store: RunStore) -> None:
    run_id = _run(store)
    with session_scope(store.url) as s:
        RunsRepository(s).force_segment(run_id, "seg-2")
    with pytest.raises(Superseded, match="seg-2"):
        _enter(store, run_id, None, skip="condition is false: no")
    with session_scope(store.url) as s:
        RunsRepository(s).transition(run_id, "aborted", segment_id=None)
    with pytest.raises(Superseded, match="aborted"):
        _enter(store, run_id, None, skip="condition is false: no", segment="seg-2")
    assert store.step_memo(run_id, "greet") is None
    assert "step.skipped" not in _events(store, run_id)


def test_a_run_without_a_segment_yet_lets_any_segment_start(store: RunStore) -> None:
    run_id = _run(store, segment=None)  # a UI launch claims the run as its Dagster run id
    with session_scope(store.url) as s:
        RunsRepository(s).force_segment(run_id, None)
    entry = _enter(store, run_id, {"text": "a"}, segment="ui-run")
    assert entry.started is not None


def test_a_step_that_cannot_move_is_illegal_not_superseded(store: RunStore) -> None:
    run_id = _run(store)
    _enter(store, run_id, {"text": "a"})
    with session_scope(store.url) as s:
        StepsRepository(s).cancel_running(run_id, error={"message": "aborted"})
    with pytest.raises(IllegalTransition):
        _enter(store, run_id, {"text": "a"})
