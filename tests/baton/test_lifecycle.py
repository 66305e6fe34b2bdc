"""The run lifecycle under races: exactly one segment per decision, a clear loser every time.

Real threads against real databases (SQLite and the running Postgres), the real approval
sensor evaluated against a real Dagster instance. Only the final hop into Dagster is recorded
instead of started (``Recorder``): what is counted is how many segments were asked for.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from baton.approvals import ApprovalError, Approvals
from baton.lifecycle import Launched, LifecycleError
from baton.segments import APPROVAL_TAG
from baton.store.audit import AuditRepository
from tests.baton.lifecycle_world import PLAN, World


def _race(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls at the same moment; each result, or the exception it raised."""
    barrier = threading.Barrier(len(calls))

    def go(call: Callable[[], Any]) -> Any:
        barrier.wait()
        try:
            return call()
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(go, calls))


def _decide_and_resume(world: World, approval_id: uuid.UUID, user: str) -> Launched | None:
    lifecycle = world.lifecycle()
    lifecycle.decide(approval_id, user=user, decision="continue")
    return lifecycle.resume(approval_id)


def test_the_fast_path_launches_the_next_segment_as_the_active_one(world: World) -> None:
    run_id, approval_id = world.waiting()
    launched = _decide_and_resume(world, approval_id, "ann")
    assert launched is not None and launched.dagster_run_id == "recorded-1"
    (segment,) = world.recorder.launches
    assert segment.job_name == "review"
    assert segment.run_config == {"inputs": {"topic": "t"}}
    assert segment.tags["baton/launched_by"] == "api"
    assert world.store.get_run(run_id).segment_id == segment.segment_id
    approval = Approvals(world.store).get(approval_id)
    assert (approval.status, approval.claimed_by, approval.launch_error) == (
        "resuming",
        "api",
        None,
    )
    assert world.tick() == []  # claimed by a live process within its lease: nothing to do
    types = [e.type for e in world.store.run_detail(run_id).events]
    assert types[-2:] == ["checkpoint.decided", "segment.launched"]


def test_fifty_decisions_racing_a_sensor_tick_resume_each_run_once(world: World) -> None:
    for _ in range(50):
        _, approval_id = world.waiting()
        decided, requests = _race(
            lambda a=approval_id: _decide_and_resume(world, a, "ann"), world.tick
        )
        assert not isinstance(decided, Exception), decided
        assert not isinstance(requests, Exception), requests
        requests += world.tick()  # whatever the race left, the next tick picks up
        assert world.segments_for(approval_id, requests) == 1
        assert Approvals(world.store).get(approval_id).status == "resuming"


@pytest.mark.parametrize("second", ["api", "cli"])
def test_twenty_racing_decisions_have_one_winner_and_a_conflict(world: World, second: str) -> None:
    for _ in range(20):
        _, approval_id = world.waiting()
        results = _race(
            lambda a=approval_id: _decide_and_resume(world, a, "ann"),
            lambda a=approval_id: (
                _decide_and_resume(world, a, "bob")
                if second == "api"
                else _cli_decide(world, a, "bob")
            ),
        )
        errors = [r for r in results if isinstance(r, Exception)]
        assert len(errors) == 1, results
        (loser,) = errors
        assert isinstance(loser, ApprovalError | CliExit), repr(loser)
        if isinstance(loser, ApprovalError):
            assert loser.code == "conflict", loser
        else:
            assert loser.code == 1 and "a decision is recorded once" in loser.stderr
        assert world.segments_for(approval_id, world.tick()) == 1
        assert Approvals(world.store).get(approval_id).status == "resuming"


def test_twenty_decisions_racing_an_abort_launch_at_most_once_and_leave_nothing_claimed(
    world: World,
) -> None:
    outcomes: Counter[str] = Counter()
    for _ in range(20):
        run_id, approval_id = world.waiting()
        decided, aborted = _race(
            lambda a=approval_id: _decide_and_resume(world, a, "ann"),
            lambda r=run_id: world.lifecycle().abort(r, by="ops"),
        )
        for result in (decided, aborted):
            if isinstance(result, Exception):
                assert isinstance(result, ApprovalError | LifecycleError), repr(result)
                assert result.code == "conflict", result
        launched = world.segments_for(approval_id, world.tick())
        assert launched <= 1
        run = world.store.get_run(run_id)
        approval = Approvals(world.store).get(approval_id)
        assert approval.status in ("cancelled", "resuming"), approval.status
        if approval.status == "resuming":
            # The abort lost: the run goes on in the one segment that was launched.
            assert run.status != "aborted" and launched == 1
        else:
            assert run.status == "aborted" and run.segment_id is None
            assert (run_id, "aborted") in world.recorder.settled  # Dagster shows Canceled
        outcomes[f"{run.status}/{approval.status}"] += 1
    assert sum(outcomes.values()) == 20


def test_a_claim_whose_job_is_missing_says_why_and_resumes_once_the_job_is_back(
    world: World,
) -> None:
    run_id, approval_id = world.waiting()
    world.recorder.fail_with = "no job 'review' in code location 'baton'"
    launched = _decide_and_resume(world, approval_id, "ann")
    assert launched is not None and launched.dagster_run_id is None
    approval = Approvals(world.store).get(approval_id)
    assert approval.status == "resuming" and approval.claimed_at is None  # handed back
    assert "no job 'review'" in (approval.launch_error or "")

    # The deployment's code location has no such job either: the sensor says so and waits.
    assert world.tick(job_names=["something_else"]) == []
    assert "is not in the code location" in str(world.last_result.skip_message)
    approval = Approvals(world.store).get(approval_id)
    assert approval.launch_error == "job 'review' is not in the code location"
    assert world.tick(job_names=["something_else"]) == []  # asked again, said once
    events = [e for e in world.store.run_detail(run_id).events if e.type.startswith("segment.")]
    assert [e.type for e in events] == ["segment.launch_failed", "segment.launch_failed"]

    [request] = world.tick()  # the job is back
    assert request.tags[APPROVAL_TAG] == str(approval_id)
    assert world.store.get_run(run_id).segment_id == request.tags["baton/segment"]


def test_an_abandoned_claim_is_taken_over_after_its_lease(world: World) -> None:
    run_id, approval_id = world.waiting()
    lifecycle = world.lifecycle()
    lifecycle.decide(approval_id, user="ann", decision="continue")
    approvals = Approvals(world.store)
    first = approvals.claim(approval_id, by="api")  # and the process died before launching
    assert first is not None
    assert approvals.reclaim(approval_id, by="sensor", lease_seconds=60) is None
    second = approvals.reclaim(approval_id, by="sensor", lease_seconds=0)
    assert second is not None and second.segment_id != first.segment_id
    # A late launch of the abandoned claim would be a superseded segment.
    assert world.store.get_run(run_id).segment_id == second.segment_id
    assert approvals.reclaim(approval_id, by="sensor", lease_seconds=60) is not None  # its own


def test_retry_and_skip_race_to_one_winner(world: World) -> None:
    for _ in range(10):
        store = world.store
        run_id = store.create_run(
            organization="global", slug="review", version=1, inputs={"topic": "t"}
        )
        store.begin_segment(run_id=run_id, dagster_run_id="dag-1", steps=PLAN)
        store.start_step(run_id, "draft", input={}, dagster_run_id="dag-1")
        store.fail_step(run_id, "draft", error={"message": "x"}, will_retry=False)
        store.fail_run(run_id, {"message": "x"})
        results = _race(
            lambda r=run_id: world.lifecycle().retry_step(r, "draft", by="ops"),
            lambda r=run_id: world.lifecycle().skip_step(r, "draft", by="ops"),
        )
        # One of them continues the run. The other is refused, or, when the retry came first,
        # it is a skip of the step the retry made pending (legal: a pending step of a running
        # run is skipped ahead, nothing launched).
        continued = [r for r in results if isinstance(r, Launched) and r.dagster_run_id]
        assert len(continued) == 1, results
        other = next(r for r in results if r is not continued[0])
        step = store.run_detail(run_id).steps[0]
        with store.session() as s:
            outcomes = sorted((a.action, a.outcome) for a in AuditRepository(s).list(run_id))
        if isinstance(other, Exception):
            assert isinstance(other, LifecycleError) and other.code == "conflict", results
            assert "failed" in str(other), other  # the refusal names the state it met
            assert sorted(o for _, o in outcomes) == ["accepted", "refused"], outcomes
        else:
            # Serialized, not a lost race: the skip saw the step the retry had made pending.
            assert other == Launched(run_id), results
            assert step.status == "skipped", step.status
            assert outcomes == [("retry", "accepted"), ("skip", "accepted")], outcomes
        assert store.get_run(run_id).status == "running"
    assert len(world.recorder.launches) == 10


@pytest.mark.parametrize("action", ["retry", "skip"])
def test_two_of_the_same_action_race_to_one_winner_and_one_refusal(
    world: World, action: str
) -> None:
    store = world.store
    for _ in range(10):
        run_id = store.create_run(
            organization="global", slug="review", version=1, inputs={"topic": "t"}
        )
        store.begin_segment(run_id=run_id, dagster_run_id="dag-1", steps=PLAN)
        store.start_step(run_id, "draft", input={}, dagster_run_id="dag-1")
        store.fail_step(run_id, "draft", error={"message": "x"}, will_retry=False)
        store.fail_run(run_id, {"message": "x"})
        results = _race(
            lambda r=run_id: getattr(world.lifecycle(), f"{action}_step")(r, "draft", by="ann"),
            lambda r=run_id: getattr(world.lifecycle(), f"{action}_step")(r, "draft", by="bob"),
        )
        errors = [r for r in results if isinstance(r, Exception)]
        assert len(errors) == 1 and isinstance(errors[0], LifecycleError), results
        assert errors[0].code == "conflict"
        with store.session() as s:
            outcomes = sorted(a.outcome for a in AuditRepository(s).list(run_id))
        assert outcomes == ["accepted", "refused"]
    assert len(world.recorder.launches) == 10


@dataclass
class CliExit(Exception):
    code: int
    stderr: str


def _cli_decide(world: World, approval_id: uuid.UUID, user: str) -> None:
    """``baton approvals decide`` in this process, its launcher recorded like the API's."""
    import argparse
    import contextlib
    import io

    from baton.cli.approvals import decide_with

    args = argparse.Namespace(
        approval_id=approval_id,
        user=user,
        decision="continue",
        changes=[],
        comment=None,
        json=False,
    )
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = decide_with(args, world.store, world.recorder)
    if code != 0:
        raise CliExit(code, err.getvalue())


def test_an_abort_closes_the_step_that_waited_for_a_person(world: World) -> None:
    run_id, approval_id = world.waiting()
    world.lifecycle().abort(run_id, by="ops")
    detail = world.store.run_detail(run_id)
    review = next(s for s in detail.steps if s.step_id == "review")
    assert review.status == "failed" and review.error["type"] == "Aborted"
    assert Approvals(world.store).get(approval_id).status == "cancelled"


def test_the_resumed_segment_names_who_decided(world: World) -> None:
    _, approval_id = world.waiting()
    _decide_and_resume(world, approval_id, "ann")
    (segment,) = world.recorder.launches
    assert segment.tags["baton/user"] == "ann"
