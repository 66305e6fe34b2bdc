"""Compensation planning, claims and the guard, on SQLite and Postgres (``db_url``)."""

from __future__ import annotations

import textwrap
import uuid
from datetime import timedelta

import pytest

from agent_resources.catalog import agent_catalog
from baton.compensation import Compensations, NotCompensable
from baton.db.models import OrchestrationStep, utcnow
from baton.interventions import compensation_refusal
from baton.lifecycle import Lifecycle, LifecycleError
from baton.state import COMPENSATION_TRANSITIONS
from baton.store.runs import RunsRepository
from baton.store.service import RunStore
from orchestration_defs.language.library import load_text
from tests.helpers import register

FLOW = """
slug: undoable
name: Undoable
version: 1
{extra}
steps:
  - id: a
    agent: echo
    with: {{text: a}}
    compensate: {{agent: echo, with: {{undo: "{{{{ step.output }}}}"}}}}
  - id: b
    agent: echo
    with: {{text: b}}
    compensate: {{agent: echo, with: {{undo: b}}}}
  - id: c
    agent: echo
    with: {{text: c}}
    compensate: {{agent: echo, with: {{undo: c}}}}
  - id: d
    agent: echo
    needs: [a, b, c]
    with: {{text: d}}
"""


def undoable_run(
    url: str,
    extra: str = "",
    completed: tuple[str, ...] = ("c", "a", "b"),
    organization: str = "global",
) -> uuid.UUID:
    """A running run whose steps in ``completed`` completed in that order, ``d`` failed."""
    spec, errors = load_text(
        textwrap.dedent(FLOW.format(extra=extra)),
        source="t.yaml",
        known_agents=set(agent_catalog()),
    )
    assert spec is not None, [str(e) for e in errors]
    register(spec, url)
    store = RunStore(url)
    run_id = store.create_run(organization=organization, slug="undoable", version=1, inputs={})
    start = utcnow()
    with store.session() as s:
        RunsRepository(s).transition(run_id, "running")
        for position, step_id in enumerate(("a", "b", "c", "d")):
            done = step_id in completed
            at = start + timedelta(seconds=completed.index(step_id)) if done else start
            s.add(
                OrchestrationStep(
                    run_id=run_id,
                    step_id=step_id,
                    position=position,
                    agent="echo",
                    status="completed" if done else "failed",
                    attempt=1,
                    call_number=1,
                    output={"done": step_id} if done else None,
                    error=None if done else {"message": "boom"},
                    finished_at=at,
                )
            )
    return run_id


def _rows(store: RunStore, run_id: uuid.UUID) -> list[tuple[str, int, str]]:
    return [(r.step_id, r.position, r.status) for r in Compensations(store).rows(run_id)]


def _events(store: RunStore, run_id: uuid.UUID) -> list[str]:
    return [e.type for e in store.run_detail(run_id).events]


def test_a_failure_plans_the_compensations_last_completed_first_once(db_url: str) -> None:
    store = RunStore(db_url)
    run_id = undoable_run(db_url)
    assert store.fail_run(run_id, {"message": "d failed"})
    # Completion order c, a, b: undone b, a, c (not the definition's order).
    assert _rows(store, run_id) == [("b", 1, "pending"), ("a", 2, "pending"), ("c", 3, "pending")]
    run = store.get_run(run_id)
    assert (run.compensation, run.compensation_claimed_by) == ("pending", None)
    assert not store.fail_run(run_id, {"message": "again"})  # ended: nothing planned twice
    assert _events(store, run_id).count("run.compensation_planned") == 1


def test_only_completed_compensable_steps_are_planned(db_url: str) -> None:
    store = RunStore(db_url)
    run_id = undoable_run(db_url, completed=("a",))
    store.fail_run(run_id, {"message": "b failed"})
    assert _rows(store, run_id) == [("a", 1, "pending")]


def test_nothing_completed_plans_nothing(db_url: str) -> None:
    store = RunStore(db_url)
    run_id = undoable_run(db_url, completed=())
    store.fail_run(run_id, {"message": "a failed"})
    assert store.get_run(run_id).compensation is None
    with pytest.raises(NotCompensable, match="no completed step with a 'compensate:'"):
        Compensations(store).request(run_id, by="ops", via="test")


def test_compensate_on_leaves_failures_out_but_an_operator_may_ask(db_url: str) -> None:
    store = RunStore(db_url)
    run_id = undoable_run(db_url, extra="compensate_on: [aborted]")
    store.fail_run(run_id, {"message": "d failed"})
    assert store.get_run(run_id).compensation is None
    steps = Compensations(store).request(run_id, by="ops", via="test")
    assert steps == ["b", "a", "c"]
    assert store.get_run(run_id).compensation == "pending"
    assert "run.compensation_requested" in _events(store, run_id)


def test_a_claim_is_won_once_and_taken_over_only_past_its_lease(db_url: str) -> None:
    store = RunStore(db_url)
    run_id = undoable_run(db_url)
    store.fail_run(run_id, {"message": "d failed"})
    compensations = Compensations(store)
    first = compensations.claim(run_id, by="api")
    assert first is not None and first.job_name == "undoable__compensate"
    assert compensations.claim(run_id, by="sensor") is None
    lease_start = utcnow() - timedelta(seconds=60)
    assert compensations.claim(run_id, by="sensor", stale_before=lease_start) is None
    assert compensations.due(stale_before=lease_start) == []
    later = utcnow() + timedelta(seconds=1)
    [due] = compensations.due(stale_before=later)
    assert due.id == run_id
    taken = compensations.claim(run_id, by="sensor", stale_before=later)
    assert taken is not None and taken.segment_id != first.segment_id
    assert "run.compensation_taken_over" in _events(store, run_id)
    # The first claimer's late job does nothing; the new one starts.
    with pytest.raises(NotCompensable, match="not claimed by segment"):
        compensations.begin(run_id, first.segment_id)
    work = compensations.begin(run_id, taken.segment_id)
    assert [r.step_id for r in work.rows] == ["b", "a", "c"]
    assert work.results["a"] == {"output": {"done": "a"}, "status": "completed"}


def test_a_released_claim_is_due_at_once_with_its_reason(db_url: str) -> None:
    store = RunStore(db_url)
    run_id = undoable_run(db_url)
    store.fail_run(run_id, {"message": "d failed"})
    compensations = Compensations(store)
    segment = compensations.claim(run_id, by="cli")
    assert segment is not None
    compensations.release(segment, reason="code location down")
    run = store.get_run(run_id)
    assert (run.compensation_claimed_by, run.compensation_error) == (None, "code location down")
    assert [r.id for r in compensations.due(stale_before=utcnow() - timedelta(hours=1))] == [run_id]


def _finish_with(store: RunStore, run_id: uuid.UUID, failing: str) -> None:
    compensations = Compensations(store)
    segment = compensations.claim(run_id, by="sensor")
    assert segment is not None
    work = compensations.begin(run_id, segment.segment_id)
    failed = {}
    for row in work.rows:
        compensations.start(run_id, row.step_id, input={}, dagster_run_id="d1", new_call=True)
        if row.step_id == failing:
            compensations.fail(run_id, row.step_id, error={"message": "no"}, final=True)
            failed[row.step_id] = "no"
        else:
            compensations.complete(run_id, row.step_id, output={"undone": True})
    compensations.finish(run_id, segment.segment_id, failed)


def test_a_failed_compensation_is_reported_and_an_operator_reruns_only_it(db_url: str) -> None:
    store = RunStore(db_url)
    run_id = undoable_run(db_url)
    store.fail_run(run_id, {"message": "d failed"})
    _finish_with(store, run_id, failing="a")
    run = store.get_run(run_id)
    assert run.compensation == "failed"
    assert run.compensation_error == "compensation of step 'a' failed: no"
    statuses = {s.step_id: s.status for s in store.run_detail(run_id).steps}
    assert statuses == {"a": "completed", "b": "compensated", "c": "compensated", "d": "failed"}
    assert Compensations(store).request(run_id, by="ops", via="test") == ["a"]
    assert _rows(store, run_id) == [
        ("b", 1, "completed"),
        ("a", 2, "pending"),
        ("c", 3, "completed"),
    ]
    [a] = [r for r in Compensations(store).rows(run_id) if r.step_id == "a"]
    started = Compensations(store).start(run_id, "a", input={}, dagster_run_id="d2", new_call=True)
    assert (started.attempt, started.call) == (a.attempt + 1, a.call_number + 1)


def test_retry_and_skip_are_refused_once_a_compensation_exists(db_url: str) -> None:
    store = RunStore(db_url)
    run_id = undoable_run(db_url)
    store.fail_run(run_id, {"message": "d failed"})
    lifecycle = Lifecycle(store, None, via="test")
    with pytest.raises(LifecycleError, match="its compensation is pending"):
        lifecycle.prepare_retry(run_id, "d", by="ops")
    with pytest.raises(LifecycleError, match="its compensation is pending"):
        lifecycle.prepare_skip(run_id, "d", by="ops")
    assert store.get_run(run_id).status == "failed"


def test_a_manual_compensation_is_refused_with_the_state_named(db_url: str) -> None:
    store = RunStore(db_url)
    running = undoable_run(db_url)
    lifecycle = Lifecycle(store, None, via="test")
    with pytest.raises(LifecycleError, match="is running; only a failed or aborted run"):
        lifecycle.prepare_compensation(running, by="ops")
    store.fail_run(running, {"message": "d failed"})
    with pytest.raises(LifecycleError, match="its compensation is pending already"):
        lifecycle.prepare_compensation(running, by="ops")
    with pytest.raises(LifecycleError) as missing:
        lifecycle.prepare_compensation(uuid.uuid4(), by="ops")
    assert missing.value.code == "not_found"


def test_an_abort_plans_and_without_a_launcher_leaves_it_to_the_sensor(db_url: str) -> None:
    store = RunStore(db_url)
    run_id = undoable_run(db_url, completed=("a", "b"))
    Lifecycle(store, None, via="test").abort(run_id, by="ops")
    run = store.get_run(run_id)
    assert (run.status, run.compensation, run.compensation_claimed_by) == (
        "aborted",
        "pending",
        None,
    )
    assert _rows(store, run_id) == [("b", 1, "pending"), ("a", 2, "pending")]


def test_the_guard_names_the_compensation_state() -> None:
    assert compensation_refusal("r1", None) is None
    for status in COMPENSATION_TRANSITIONS:
        message = compensation_refusal("r1", status)
        assert message is not None and f"its compensation is {status}" in message


def test_doctor_lists_a_compensation_not_started_until_it_starts(db_url: str) -> None:
    from baton.doctor import waiting_on_system

    store = RunStore(db_url)
    run_id = undoable_run(db_url)
    store.fail_run(run_id, {"message": "d failed"})

    def listed(after: float) -> list[str]:
        with store.session() as s:
            found = waiting_on_system(s, now=utcnow() + timedelta(seconds=after))
        return [w.reason for w in found if w.kind == "compensation_not_started"]

    assert listed(0) == []  # the sensor has a daemon loop to claim it
    [unclaimed] = listed(60)
    assert "planned but not claimed" in unclaimed
    segment = Compensations(store).claim(run_id, by="cli")
    assert segment is not None
    assert listed(30) == []  # within the claim's lease
    [stale] = listed(120)
    assert "claimed by cli but not started past its lease" in stale
    Compensations(store).begin(run_id, segment.segment_id)
    assert listed(120) == []


def test_a_manual_compensation_is_audited_accepted_or_refused(db_url: str) -> None:
    from baton.store.audit import AuditRepository

    store = RunStore(db_url)
    run_id = undoable_run(db_url, extra="compensate_on: [aborted]")
    lifecycle = Lifecycle(store, None, via="cli")
    with pytest.raises(LifecycleError, match="is running"):
        lifecycle.prepare_compensation(run_id, by="ops", reason="too early")
    store.fail_run(run_id, {"message": "d failed"})  # compensate_on leaves failures out
    steps = lifecycle.prepare_compensation(run_id, by="ops", reason="undo the announcement")
    assert steps == ["b", "a", "c"]
    with store.session() as s:
        entries = [
            (e.action, e.outcome, e.by, e.via, e.reason, e.run_status, e.details)
            for e in AuditRepository(s).list(run_id)
        ]
    assert entries == [
        ("compensate", "refused", "ops", "cli", "too early", "running", {"steps": []}),
        (
            "compensate",
            "accepted",
            "ops",
            "cli",
            "undo the announcement",
            "failed",
            {"steps": ["b", "a", "c"]},
        ),
    ]


def _doctor(store: RunStore, kind: str, after: float = 0) -> list[str]:
    from baton.doctor import waiting_on_system

    with store.session() as s:
        found = waiting_on_system(s, now=utcnow() + timedelta(seconds=after))
    return [w.reason for w in found if w.kind == kind]


def test_doctor_counts_a_reopened_compensation_from_its_reopening(db_url: str) -> None:
    store = RunStore(db_url)
    run_id = undoable_run(db_url)
    store.fail_run(run_id, {"message": "d failed"})
    _finish_with(store, run_id, failing="a")
    with store.session() as s:  # the run and its compensation failed a day ago
        run = RunsRepository(s).get(run_id)
        assert run is not None
        run.finished_at = run.updated_at = utcnow() - timedelta(days=1)
    assert Compensations(store).request(run_id, by="ops", via="test") == ["a"]
    assert _doctor(store, "compensation_not_started") == []  # the sensor has a loop to claim it
    [late] = _doctor(store, "compensation_not_started", after=60)
    assert "planned but not claimed" in late


def test_doctor_lists_a_compensation_call_running_past_the_step_lease(db_url: str) -> None:
    store = RunStore(db_url)
    run_id = undoable_run(db_url)
    store.fail_run(run_id, {"message": "d failed"})
    compensations = Compensations(store)
    segment = compensations.claim(run_id, by="sensor")
    assert segment is not None
    work = compensations.begin(run_id, segment.segment_id)
    first = work.rows[0].step_id
    compensations.start(run_id, first, input={}, dagster_run_id="d1", new_call=True)
    assert _doctor(store, "compensation_running", after=30) == []
    [stuck] = _doctor(store, "compensation_running", after=600)
    assert f"compensation of step '{first}'" in stuck and segment.segment_id in stuck
    compensations.complete(run_id, first, output={"undone": True})
    assert _doctor(store, "compensation_running", after=600) == []
