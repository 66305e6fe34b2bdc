"""The reaper applies the step's retry policy to an orphaned attempt, on a real Dagster
instance (SQLite in a temp DAGSTER_HOME, or Postgres) with the sensor ticked at a controlled
clock; where a retry segment runs for real, its agent is the shipped ``publisher`` calling a
local HTTP server that records each call's idempotency key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dagster import DagsterInstance, DagsterRunStatus, SkipReason

from baton.segments import RUN_TAG, SEGMENT_TAG
from baton.store.service import RunStore
from orchestration_defs.compiler.resources import BatonStoreResource
from sensors.run_failure import baton_run_failure_sensor
from tests.orchestration_defs.calls_server import CallsServer
from tests.sensors.reaper_world import (
    PLAN,
    SLUG,
    dagster_run,
    events,
    execute,
    flow,
    mid_step,
    orphan_again,
    requests_of,
    server,
    setup,
    statuses,
    step,
    tick,
)
from tests.sensors.test_run_failure import failure_context

__all__ = ["server"]  # the fixture, used by name

TWICE = flow("{max_attempts: 2, delay_seconds: 30}")


def test_an_orphan_is_retried_once_its_delay_passed_and_completes_under_its_key(
    dagster_instance: DagsterInstance, server: CallsServer
) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    job = setup(TWICE, url)
    run_id, owner = mid_step(url, dagster_instance, DagsterRunStatus.CANCELED)
    now = datetime.now(UTC)

    assert requests_of(tick(dagster_instance, url, now)) == []

    b = step(url, run_id, "b")
    assert b.status == "failed" and b.error["will_retry"] is True
    assert b.error["retry_policy"] == "retry 2 of 2 in 30 s"
    # The policy's delay (constant 30 s) is the column the reaper reads.
    retry_at = b.retry_at if b.retry_at.tzinfo else b.retry_at.replace(tzinfo=UTC)
    assert timedelta(seconds=29) < retry_at - now <= timedelta(seconds=31)
    (orphaned,) = events(url, run_id, "step.orphaned")
    assert orphaned["will_retry"] is True and orphaned["dagster_run_id"] == owner
    # Before the delay ends nothing is retried.
    assert requests_of(tick(dagster_instance, url, now + timedelta(seconds=20))) == []
    assert RunStore(url).get_run(run_id).status == "failed"

    later = now + timedelta(seconds=31)
    (request,) = requests_of(tick(dagster_instance, url, later))

    segment = request.tags[SEGMENT_TAG]
    assert request.run_key == f"reaper-retry:{segment}"
    run = RunStore(url).get_run(run_id)
    assert run.status == "running" and run.segment_id == segment
    # The step keeps its call until the segment starts it: the agent sees the same key.
    b = step(url, run_id, "b")
    assert (b.status, b.call_number, b.retry_at) == ("failed", 1, None)
    (retried,) = events(url, run_id, "step.retry_requested")
    assert (retried["by"], retried["new_call"], retried["segment_id"]) == ("reaper", False, segment)
    # Taken once: another tick asks for nothing.
    assert requests_of(tick(dagster_instance, url, later + timedelta(seconds=1))) == []

    assert execute(job, dagster_instance, request)

    assert RunStore(url).get_run(run_id).status == "completed"
    assert server.keys == [f"{run_id}:b:1"]  # a's output reused; b called under call 1
    b = step(url, run_id, "b")
    assert (b.status, b.attempt, b.call_number) == ("completed", 2, 1)


def test_the_policy_is_exhausted_after_max_attempts(dagster_instance: DagsterInstance) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    setup(TWICE, url)
    run_id, _ = mid_step(url, dagster_instance, DagsterRunStatus.FAILURE)
    now = datetime.now(UTC)
    tick(dagster_instance, url, now)
    (request,) = requests_of(tick(dagster_instance, url, now + timedelta(seconds=31)))
    # The retry's attempt (2 of 2) is orphaned in its turn.
    owner = orphan_again(url, dagster_instance, request)

    result = tick(dagster_instance, url, now + timedelta(seconds=40))

    assert isinstance(result, SkipReason)
    b = step(url, run_id, "b")
    assert (b.status, b.attempt, b.retry_at) == ("failed", 2, None)
    assert b.error["will_retry"] is False
    assert b.error["retry_policy"] == "retry policy exhausted (2 of 2 attempts)"
    run = RunStore(url).get_run(run_id)
    assert run.status == "failed"
    assert "retry policy exhausted (2 of 2 attempts)" in (run.error or {})["message"]
    assert events(url, run_id, "step.orphaned")[-1]["dagster_run_id"] == owner
    # Never retried again, however late.
    assert requests_of(tick(dagster_instance, url, now + timedelta(days=1))) == []
    assert len(events(url, run_id, "step.retry_requested")) == 1


def test_a_retry_whose_job_is_not_in_the_code_location_says_so(
    dagster_instance: DagsterInstance,
) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    setup(TWICE, url)
    run_id, _ = mid_step(url, dagster_instance, DagsterRunStatus.CANCELED)
    now = datetime.now(UTC)
    tick(dagster_instance, url, now, jobs=())

    result = tick(dagster_instance, url, now + timedelta(seconds=31), jobs=())

    assert isinstance(result, SkipReason)
    message = result.skip_message or ""
    assert f"the policy retry of step 'b' of run {run_id} was not launched" in message
    assert "job 'two' is not in the code location" in message
    run = RunStore(url).get_run(run_id)
    assert run.status == "failed"
    assert "job 'two' is not in the code location" in (run.error or {})["message"]
    assert "not in the code location" in str(events(url, run_id, "run.failed")[-1]["message"])
    assert statuses(url, run_id) == {"a": "completed", "b": "failed"}
    # Taken once: it is not asked again every tick (an operator retries once the job is back).
    again = tick(dagster_instance, url, now + timedelta(seconds=60), jobs=())
    assert "not launched" not in (again.skip_message or "")  # type: ignore[union-attr]
    assert len(events(url, run_id, "step.retry_requested")) == 1


def test_a_retry_request_lost_by_the_daemon_is_asked_again(
    dagster_instance: DagsterInstance, server: CallsServer
) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    # No delay: the retry is asked for at once, so the bound counts from about now (the
    # store dates its events with the real clock, the sensor's clock is the test's).
    job = setup(flow("{max_attempts: 2}"), url)
    run_id, _ = mid_step(url, dagster_instance, DagsterRunStatus.CANCELED)
    now = datetime.now(UTC)
    # Without a delay the tick that fails the orphan retries it.
    (lost,) = requests_of(tick(dagster_instance, url, now))
    # The daemon died before storing the request: Dagster has no run of the segment, and the
    # Baton run is `running` on it. Within the bound (claim_lease_seconds, 60 s) it waits.
    assert RunStore(url).get_run(run_id).status == "running"
    assert requests_of(tick(dagster_instance, url, now + timedelta(seconds=30))) == []
    assert events(url, run_id, "segment.relaunch_requested") == []

    (again,) = requests_of(tick(dagster_instance, url, now + timedelta(seconds=62)))

    # The same segment under the same run key: Dagster makes one run of it at most.
    assert again.run_key == lost.run_key
    assert again.tags[SEGMENT_TAG] == lost.tags[SEGMENT_TAG]
    (relaunch,) = events(url, run_id, "segment.relaunch_requested")
    assert relaunch["segment_id"] == lost.tags[SEGMENT_TAG] and relaunch["by"] == "reaper"
    assert "Dagster has no run of it" in relaunch["reason"]

    assert execute(job, dagster_instance, again)

    assert RunStore(url).get_run(run_id).status == "completed"
    assert server.keys == [f"{run_id}:b:1"]
    # Started now: never asked again.
    assert requests_of(tick(dagster_instance, url, now + timedelta(seconds=600))) == []


def test_a_retry_segment_dagster_holds_is_not_asked_again(
    dagster_instance: DagsterInstance,
) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    setup(flow("{max_attempts: 2}"), url)
    run_id, _ = mid_step(url, dagster_instance, DagsterRunStatus.CANCELED)
    now = datetime.now(UTC)
    (request,) = requests_of(tick(dagster_instance, url, now))
    # The daemon stored and launched the request; its worker is still starting.
    dagster_run(dagster_instance, run_id, DagsterRunStatus.STARTING, dict(request.tags))

    assert requests_of(tick(dagster_instance, url, now + timedelta(seconds=600))) == []
    assert events(url, run_id, "segment.relaunch_requested") == []


def test_a_compensation_waits_for_the_retry_policy(dagster_instance: DagsterInstance) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    setup(flow("{max_attempts: 2}", undo_a=True), url)
    run_id, _ = mid_step(url, dagster_instance, DagsterRunStatus.CANCELED)
    now = datetime.now(UTC)

    # The orphan's failure is not the run's end while its policy allows another attempt: no
    # compensation is planned (it would refuse the retry), and the retry goes ahead.
    (request,) = requests_of(tick(dagster_instance, url, now))

    assert events(url, run_id, "run.compensation_planned") == []
    assert RunStore(url).get_run(run_id).status == "running"
    # Exhausted, the failure is the run's end: a's compensation is planned.
    orphan_again(url, dagster_instance, request)
    tick(dagster_instance, url, now + timedelta(seconds=10))
    assert RunStore(url).get_run(run_id).status == "failed"
    (planned,) = events(url, run_id, "run.compensation_planned")
    assert planned["steps"] == ["a"]


def test_a_retry_segment_dagster_created_and_never_submitted_is_asked_again(
    dagster_instance: DagsterInstance,
) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    setup(flow("{max_attempts: 2}"), url)
    run_id, _ = mid_step(url, dagster_instance, DagsterRunStatus.CANCELED)
    now = datetime.now(UTC)
    (request,) = requests_of(tick(dagster_instance, url, now))
    # The daemon created the run and died before submitting it: Dagster resubmits a
    # NOT_STARTED run when its run key is requested again, so the reaper asks again.
    dagster_run(dagster_instance, run_id, DagsterRunStatus.NOT_STARTED, dict(request.tags))

    (again,) = requests_of(tick(dagster_instance, url, now + timedelta(seconds=62)))

    assert again.run_key == request.run_key
    assert len(events(url, run_id, "segment.relaunch_requested")) == 1


def test_a_worker_that_died_mid_step_is_the_reapers_even_when_the_run_failure_sensor_runs_first(
    dagster_instance: DagsterInstance,
) -> None:
    """Run monitoring can end a dead worker's Dagster run FAILURE before the lease expires:
    the run-failure sensor then leaves the run to the reaper, so the step's policy applies
    (it used to fail the run first, and the orphan got ``will_retry: false``)."""
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    setup(TWICE, url)
    store = RunStore(url)
    run_id = store.create_run(organization="global", slug=SLUG, version=1, inputs={})
    context = failure_context(dagster_instance, {RUN_TAG: str(run_id)})
    owner = context.dagster_run.run_id
    store.begin_segment(run_id=run_id, dagster_run_id=owner, steps=PLAN)
    store.start_step(run_id, "a", input={}, dagster_run_id=owner)
    store.complete_step(run_id, "a", output={"done": 1})
    store.start_step(run_id, "b", input={}, dagster_run_id=owner)

    baton_run_failure_sensor(context, baton_store=BatonStoreResource(database_url=url))
    assert store.get_run(run_id).status == "running"  # left to the reaper

    now = datetime.now(UTC)
    assert requests_of(tick(dagster_instance, url, now)) == []
    b = step(url, run_id, "b")
    assert b.status == "failed" and b.error["will_retry"] is True
    assert store.get_run(run_id).status == "failed"
    (request,) = requests_of(tick(dagster_instance, url, now + timedelta(seconds=31)))
    assert request.run_key.startswith("reaper-retry:")


def test_a_policy_retry_that_cannot_be_launched_ends_the_run_and_compensates(
    dagster_instance: DagsterInstance,
) -> None:
    """The compensation waited for the policy retry; that retry's launch failing (its job is
    not in the code location) is the run's end, so the compensation is planned then."""
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    setup(flow("{max_attempts: 2}", undo_a=True), url)
    run_id, _ = mid_step(url, dagster_instance, DagsterRunStatus.CANCELED)

    tick(dagster_instance, url, datetime.now(UTC), jobs=())

    run = RunStore(url).get_run(run_id)
    assert run.status == "failed" and "not in the code location" in (run.error or {})["message"]
    (planned,) = events(url, run_id, "run.compensation_planned")
    assert planned["steps"] == ["a"] and planned["after"] == "failed"
