"""The compensation sensor: launches planned compensations once, says why it waits."""

from __future__ import annotations

from datetime import timedelta

from dagster import DagsterInstance, SensorResult, SkipReason, build_sensor_context

from baton.compensation import Compensations
from baton.segments import COMPENSATION_TAG, RUN_TAG, SEGMENT_TAG
from baton.store.service import RunStore
from orchestration_defs.compiler.resources import BatonStoreResource
from sensors.compensation import build_compensation_sensor, evaluate
from tests.baton.test_compensation import undoable_run

JOB = "undoable__compensate"


def _tick(instance: DagsterInstance, url: str, jobs: list[str]) -> SensorResult | SkipReason:
    context = build_sensor_context(
        instance=instance, resources={"baton_store": BatonStoreResource(database_url=url)}
    )
    result = build_compensation_sensor(jobs)(context)
    assert isinstance(result, SensorResult | SkipReason)
    return result


def test_a_failed_run_is_launched_once_with_the_segment_tags(
    dagster_instance: DagsterInstance,
) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    run_id = undoable_run(url)
    RunStore(url).fail_run(run_id, {"message": "d failed"})
    first = _tick(dagster_instance, url, [JOB])
    assert isinstance(first, SensorResult)
    [request] = first.run_requests or []
    assert request.job_name == JOB
    assert request.tags[RUN_TAG] == str(run_id) and request.tags[COMPENSATION_TAG] == "true"
    run = RunStore(url).get_run(run_id)
    assert request.tags[SEGMENT_TAG] == run.compensation_segment
    assert run.compensation_claimed_by == "sensor"
    again = _tick(dagster_instance, url, [JOB])
    assert isinstance(again, SkipReason)
    assert "no compensation waiting" in (again.skip_message or "")


def test_a_missing_compensation_job_waits_with_the_reason(db_url: str) -> None:
    run_id = undoable_run(db_url)
    store = RunStore(db_url)
    store.fail_run(run_id, {"message": "d failed"})
    requests, waiting = evaluate(Compensations(store), set())
    assert requests == []
    assert waiting == [f"run {run_id}: job '{JOB}' is not in the code location"]
    run = store.get_run(run_id)
    assert (run.compensation, run.compensation_claimed_by) == ("pending", None)
    assert run.compensation_error == f"job '{JOB}' is not in the code location"


def test_a_compensation_whose_job_died_is_failed_and_its_rerun_keeps_the_call(
    dagster_instance: DagsterInstance,
) -> None:
    from dagster import DagsterRunStatus
    from dagster._core.test_utils import create_run_for_test

    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    store = RunStore(url)
    run_id = undoable_run(url)
    store.fail_run(run_id, {"message": "d failed"})
    compensations = Compensations(store)
    segment = compensations.claim(run_id, by="cli")
    assert segment is not None
    compensations.begin(run_id, segment.segment_id)
    started = compensations.start(run_id, "b", input={}, dagster_run_id="w1", new_call=True)
    # Its worker still runs: nothing happens.
    create_run_for_test(
        dagster_instance,
        job_name=JOB,
        status=DagsterRunStatus.STARTED,
        tags={RUN_TAG: str(run_id), SEGMENT_TAG: segment.segment_id},
    )
    assert isinstance(_tick(dagster_instance, url, [JOB]), SkipReason)
    assert store.get_run(run_id).compensation == "running"
    [dagster_run] = dagster_instance.get_runs()
    dagster_instance.report_run_failed(dagster_run, "worker killed")
    assert isinstance(_tick(dagster_instance, url, [JOB]), SkipReason)
    run = store.get_run(run_id)
    assert run.compensation == "failed"
    assert "ended FAILURE before the compensation finished" in (run.compensation_error or "")
    rows = {r.step_id: (r.status, (r.error or {}).get("kind")) for r in compensations.rows(run_id)}
    assert rows == {"b": ("failed", "interrupted"), "a": ("pending", None), "c": ("pending", None)}
    # An operator's re-run presents b's interrupted call again (same key), then the others.
    assert compensations.request(run_id, by="ops", via="test") == ["b", "a", "c"]
    again = compensations.claim(run_id, by="cli")
    assert again is not None
    work = compensations.begin(run_id, again.segment_id)
    assert [r.status for r in work.rows] == ["running", "pending", "pending"]
    resumed = compensations.start(run_id, "b", input={}, dagster_run_id="w2", new_call=False)
    assert resumed.call == started.call


def test_a_claim_dagster_still_starts_is_not_taken_over_past_its_lease(
    dagster_instance: DagsterInstance,
) -> None:
    from dagster import DagsterRunStatus
    from dagster._core.test_utils import create_run_for_test
    from sqlalchemy import update

    from baton.db.models import OrchestrationRun, utcnow

    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    store = RunStore(url)
    run_id = undoable_run(url)
    store.fail_run(run_id, {"message": "d failed"})
    segment = Compensations(store).claim(run_id, by="api")
    assert segment is not None
    # The abort's launch went through, but its worker is still starting past the lease (a
    # pod waiting for a node; a run queue is the same: QUEUED is held too).
    queued = create_run_for_test(
        dagster_instance,
        job_name=JOB,
        status=DagsterRunStatus.STARTING,
        tags={RUN_TAG: str(run_id), SEGMENT_TAG: segment.segment_id},
    )
    with store.session() as s:
        s.execute(
            update(OrchestrationRun)
            .where(OrchestrationRun.id == run_id)
            .values(compensation_claimed_at=utcnow() - timedelta(hours=1))
        )
    waits = _tick(dagster_instance, url, [JOB])
    assert isinstance(waits, SkipReason)
    assert f"segment {segment.segment_id} is STARTING in Dagster" in (waits.skip_message or "")
    run = store.get_run(run_id)
    assert (run.compensation_segment, run.compensation_claimed_by) == (segment.segment_id, "api")
    # Once that run ended without starting the compensation, the claim is taken over.
    dagster_instance.report_run_failed(queued, "dequeued into a dead worker")
    taken = _tick(dagster_instance, url, [JOB])
    assert isinstance(taken, SensorResult)
    [request] = taken.run_requests or []
    assert request.tags[SEGMENT_TAG] == store.get_run(run_id).compensation_segment
    assert request.tags[SEGMENT_TAG] != segment.segment_id
