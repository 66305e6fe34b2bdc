"""Children of one parent ending at the same moment, for real: threads on SQLite and Postgres.

Each round ends every running child of a parent at once and calls the lifecycle's child-ended
path from one thread per child, with the children sensor's ``advance`` racing them. Only the
final hop into Dagster is recorded (``Counting``); what is counted is how many segments were
asked for and how many children were running at each launch. (Segments run in process from
threads hung inside Dagster, so the lifecycle and children functions are called directly.)
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest

from baton.children import Children, ChildRequest
from baton.lifecycle import Lifecycle
from baton.segments import SegmentPlan
from baton.state import TERMINAL_RUN_STATUSES
from baton.store.service import RunStore, StepPlan
from tests.baton.lifecycle_world import Recorder
from tests.helpers import compile_text

CHILD = """
slug: leaf
name: Leaf
version: 1
inputs:
  start: {type: string, required: true}
steps:
  - id: work
    agent: echo
    with: {start: "{{ inputs.start }}"}
"""

PARENT = """
slug: fan
name: Fan
version: 1
inputs:
  periods: {type: array, default: []}
steps:
  - id: periods
    orchestration: leaf
    for_each: "{{ inputs.periods }}"
    max_parallel: 2
    with: {start: "{{ item }}"}
  - id: after
    agent: echo
    with: {n: 1}
"""
ROUNDS = 8
CHILDREN = 7


@dataclass
class Counting(Recorder):
    """A recorder that also notes, at each child launch, how many children of the parent run."""

    url: str = ""
    running: list[int] = field(default_factory=list)

    def launch(self, segment: SegmentPlan) -> str:
        if segment.job_name == "leaf":
            self.running.append(_running(RunStore(self.url), segment.tags["baton/parent_run_id"]))
        return super().launch(segment)


def _running(store: RunStore, parent: str) -> int:
    kids = store.list_runs(parent_run_id=uuid.UUID(parent), limit=100)
    return sum(1 for k in kids if k.segment_id and k.status not in TERMINAL_RUN_STATUSES)


def _race(calls: list[Callable[[], Any]]) -> list[Any]:
    barrier = threading.Barrier(len(calls))

    def go(call: Callable[[], Any]) -> Any:
        barrier.wait()
        try:
            return call()
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(go, calls))


def _parent(store: RunStore, recorder: Counting, max_parallel: int, policy: str) -> uuid.UUID:
    """A parent whose first segment reached the step: its children created, the first claimed."""
    periods = [f"p{i}" for i in range(CHILDREN)]
    run_id = store.create_run(
        organization="global",
        slug="fan",
        version=1,
        inputs={"periods": periods},
        created_by="ann",
    )
    store.begin_segment(
        run_id=run_id, dagster_run_id="d-root", steps=[StepPlan("periods", "orchestration", None)]
    )
    request = ChildRequest(
        parent_id=run_id,
        step_id="periods",
        orchestration="leaf",
        version=None,
        inputs=[{"start": p} for p in periods],
        max_parallel=max_parallel,
        on_child_failure=policy,
        dagster_run_id="d-root",
    )
    Lifecycle(store, recorder, via="worker").start_children(request, max_depth=5)
    return run_id


def _end_running(store: RunStore, recorder: Counting, parent: uuid.UUID, fail: bool) -> None:
    """Every running child of ``parent`` ends, then all of them report it at the same moment
    (one thread each), with a sensor evaluation racing them."""
    ending = [
        plan
        for plan in recorder.launches
        if plan.run_id != parent and store.get_run(plan.run_id).status not in TERMINAL_RUN_STATUSES
    ]
    for plan in ending:
        store.begin_segment(
            run_id=plan.run_id,
            dagster_run_id=f"d-{plan.segment_id}",
            steps=[StepPlan("work", "agent", "echo")],
            segment=plan.segment_id,
        )
        if fail:
            store.fail_run(plan.run_id, {"message": "boom"})
        else:
            store.complete_run(plan.run_id, {"start": "done"})

    def ended(child: uuid.UUID, via: str) -> Callable[[], None]:
        return lambda: Lifecycle(store, recorder, via=via).child_ended(child)

    def sensor() -> None:
        children = Children(store, via="sensor")
        for plan in children.advance(parent).launch:
            recorder.launch(plan)

    calls = [ended(plan.run_id, f"worker-{i}") for i, plan in enumerate(ending)]
    results = _race([*calls, sensor])
    assert not [r for r in results if isinstance(r, Exception)], results


@pytest.mark.parametrize("max_parallel", [2, 3])
def test_children_ending_at_once_resume_the_parent_once_within_max_parallel(
    db_url: str, max_parallel: int
) -> None:
    compile_text(CHILD, db_url)
    compile_text(PARENT, db_url)
    store = RunStore(db_url)
    for _ in range(ROUNDS):
        recorder = Counting(url=db_url)
        parent = _parent(store, recorder, max_parallel, "continue")
        for _ in range(CHILDREN + 1):
            if store.get_run(parent).status != "awaiting_children":
                break
            _end_running(store, recorder, parent, fail=False)
        run = store.get_run(parent)
        assert run.status == "running", run.error  # resumed: its next segment is claimed
        launched = Counter(plan.run_id for plan in recorder.launches)
        assert launched[parent] == 1, "the parent resumed more than once"
        children = store.list_runs(parent_run_id=parent, limit=100)
        assert {launched[c.id] for c in children} == {1}, "a child launched twice (or never)"
        assert {c.status for c in children} == {"completed"}
        assert max(recorder.running) <= max_parallel and max_parallel in recorder.running
        [resumed] = [p for p in recorder.launches if p.run_id == parent]
        assert run.segment_id == resumed.segment_id
        types = Counter(e.type for e in store.run_detail(parent).events)
        assert types["children.completed"] == 1
        # One child.ended per child, also when the sensor's advance saw an end first.
        assert types["child.ended"] == CHILDREN


def test_children_failing_at_once_fail_the_parent_once(db_url: str) -> None:
    compile_text(CHILD, db_url)
    compile_text(PARENT, db_url)
    store = RunStore(db_url)
    for _ in range(ROUNDS):
        recorder = Counting(url=db_url)
        parent = _parent(store, recorder, 3, "fail")
        _end_running(store, recorder, parent, fail=True)
        run = store.get_run(parent)
        assert run.status == "failed" and run.error["type"] == "ChildFailed"
        types = Counter(e.type for e in store.run_detail(parent).events)
        assert (types["run.failed"], types["children.completed"]) == (1, 0)
        assert parent not in {plan.run_id for plan in recorder.launches}
        statuses = Counter(c.status for c in store.list_runs(parent_run_id=parent, limit=100))
        assert statuses == {"failed": 3, "aborted": CHILDREN - 3}
