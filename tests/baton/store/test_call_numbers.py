"""The logical call number (the idempotency key's counter) and whose output a step row keeps."""

from __future__ import annotations

import uuid

import pytest

from baton.db.engine import session_scope
from baton.state import IllegalTransition
from baton.store.service import RunStore, StartedCall, StepPlan
from baton.store.steps import StepsRepository
from tests.baton.store.factories import ORG, spec

PLAN = [StepPlan("greet", "agent", "echo")]


@pytest.fixture
def run(db_url: str) -> tuple[RunStore, uuid.UUID]:
    store = RunStore(db_url)
    store.register_definition(
        organization=ORG,
        slug="hello",
        version=1,
        name="Hello",
        spec=spec(),
        checksum="sum-1",
        description=None,
        source_path="library/hello.yaml",
    )
    run_id = store.create_run(organization=ORG, slug="hello", version=1, inputs={"name": "Ada"})
    store.begin_segment(run_id=run_id, dagster_run_id="dag-1", steps=PLAN)
    return store, run_id


def start(
    store: RunStore, run_id: uuid.UUID, dagster_run_id: str, *, retry: bool = False
) -> StartedCall:
    return store.start_call(run_id, "greet", input=None, dagster_run_id=dagster_run_id, retry=retry)


def test_three_reexecutions_of_an_interrupted_call_present_the_same_call(
    run: tuple[RunStore, uuid.UUID],
) -> None:
    store, run_id = run
    first = start(store, run_id, "dag-1")
    # The worker died mid-call (the step stays running), then Dagster re-executed three times.
    again = [start(store, run_id, f"dag-{n}") for n in (2, 3, 4)]
    assert (first.attempt, first.call) == (1, 1)
    assert [(s.attempt, s.call) for s in again] == [(2, 1), (3, 1), (4, 1)]


def test_a_reexecution_of_a_failed_attempt_keeps_the_call(
    run: tuple[RunStore, uuid.UUID],
) -> None:
    store, run_id = run
    start(store, run_id, "dag-1")
    store.fail_step(run_id, "greet", error={"message": "reaped"}, will_retry=False)
    assert start(store, run_id, "dag-2").call == 1


def test_the_retry_policy_and_an_operator_retry_make_new_calls(
    run: tuple[RunStore, uuid.UUID],
) -> None:
    store, run_id = run
    start(store, run_id, "dag-1")
    store.fail_step(run_id, "greet", error={"message": "503"}, will_retry=True)
    assert start(store, run_id, "dag-1", retry=True).call == 2
    store.fail_step(run_id, "greet", error={"message": "503"}, will_retry=False)
    with session_scope(store.url) as s:  # what an operator's retry does to the step
        StepsRepository(s).transition(run_id, "greet", "pending")
    assert start(store, run_id, "dag-2").call == 3


def test_the_row_keeps_the_output_of_the_attempt_that_produced_it(
    run: tuple[RunStore, uuid.UUID],
) -> None:
    store, run_id = run
    start(store, run_id, "dag-1")
    start(store, run_id, "dag-2")  # a re-execution took over while attempt 1's call ran
    with pytest.raises(IllegalTransition):
        store.complete_step(run_id, "greet", output={"from": 1}, attempt=1)
    store.complete_step(run_id, "greet", output={"from": 2}, attempt=2)
    with session_scope(store.url) as s:
        row = StepsRepository(s).get(run_id, "greet")
        assert row is not None
        assert (row.status, row.attempt, row.call_number, row.output) == (
            "completed",
            2,
            1,
            {"from": 2},
        )
