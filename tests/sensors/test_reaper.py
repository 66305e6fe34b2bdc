"""The reaper sensor on a real Dagster instance: no step stays ``running`` once its run ended.

Dagster runs are real rows of the instance (SQLite in a temp DAGSTER_HOME, or Postgres), put
in the status a crash or a force-terminate leaves; Baton's run and steps are real rows too.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from dagster import DagsterInstance, DagsterRunStatus, SkipReason, build_sensor_context
from dagster._core.test_utils import create_run_for_test

from baton.lifecycle import Lifecycle
from baton.reaper import dagster_owner_statuses, reap
from baton.segments import RUN_TAG
from baton.store.service import RunStore, StepPlan
from orchestration_defs.compiler.resources import BatonStoreResource
from sensors.reaper import baton_reaper_sensor
from tests.baton.lifecycle_world import Recorder
from tests.helpers import compile_text
from tests.orchestration_defs.calls_server import CallsServer
from tests.sensors import reaper_world as world
from tests.sensors.reaper_world import server

TWO_STEPS = """
slug: two
name: Two
version: 1
steps:
  - id: a
    agent: echo
  - id: b
    needs: [a]
    agent: echo
"""
PLAN = [StepPlan("a", "agent", "echo"), StepPlan("b", "agent", "echo")]

__all__ = ["server"]  # the fixture, used by name


def _dagster_run(instance: DagsterInstance, run_id: uuid.UUID, status: DagsterRunStatus) -> str:
    run = create_run_for_test(instance, job_name="two", status=status, tags={RUN_TAG: str(run_id)})
    return run.run_id


def _mid_step(
    url: str, instance: DagsterInstance, status: DagsterRunStatus
) -> tuple[uuid.UUID, str]:
    """A run whose step ``a`` completed and ``b`` is running in a Dagster run of ``status``."""
    store = RunStore(url)
    run_id = store.create_run(organization="global", slug="two", version=1, inputs={})
    owner = _dagster_run(instance, run_id, status)
    store.begin_segment(run_id=run_id, dagster_run_id=owner, steps=PLAN)
    store.start_step(run_id, "a", input={}, dagster_run_id=owner)
    store.complete_step(run_id, "a", output={"done": 1})
    store.start_step(run_id, "b", input={}, dagster_run_id=owner)
    return run_id, owner


def _tick(instance: DagsterInstance, url: str) -> SkipReason:
    context = build_sensor_context(
        instance=instance, resources={"baton_store": BatonStoreResource(database_url=url)}
    )
    result = baton_reaper_sensor(context)
    assert isinstance(result, SkipReason)
    return result


def _statuses(url: str, run_id: uuid.UUID) -> dict[str, str]:
    return {s.step_id: s.status for s in RunStore(url).run_detail(run_id).steps}


def _events(url: str, run_id: uuid.UUID, type_: str) -> list[dict[str, object]]:
    return [e.payload for e in RunStore(url).run_detail(run_id).events if e.type == type_]


@pytest.mark.parametrize("ended", [DagsterRunStatus.CANCELED, DagsterRunStatus.FAILURE])
def test_a_step_of_an_ended_dagster_run_is_failed_and_can_be_retried(
    dagster_instance: DagsterInstance, ended: DagsterRunStatus, server: CallsServer
) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    job = world.setup(world.flow(), url)  # b's call goes to a local HTTP server
    run_id, owner = world.mid_step(url, dagster_instance, ended)

    _tick(dagster_instance, url)

    assert _statuses(url, run_id) == {"a": "completed", "b": "failed"}
    (orphaned,) = _events(url, run_id, "step.orphaned")
    assert orphaned["dagster_run_id"] == owner and orphaned["dagster_status"] == ended.value
    assert f"ended {ended.value}" in str(orphaned["reason"])
    run = RunStore(url).get_run(run_id)
    assert run.status == "failed" and (run.error or {})["kind"] == "orphaned"
    # The operator's retry is accepted now (it answered 409 on a running step). The orphan's
    # call may have reached the agent, so the step stays failed with its call (and key) until
    # the new segment starts it; a second tick changes nothing meanwhile.
    recorder = Recorder()
    launched = Lifecycle(RunStore(url), recorder, via="api").retry_step(run_id, "b", by="ops")
    assert launched.error is None and len(recorder.launches) == 1
    b = world.step(url, run_id, "b")
    assert (b.status, b.attempt, b.call_number) == ("failed", 1, 1)
    _tick(dagster_instance, url)
    assert len(_events(url, run_id, "step.orphaned")) == 1
    assert RunStore(url).get_run(run_id).status == "running"
    assert _statuses(url, run_id) == {"a": "completed", "b": "failed"}

    (segment,) = recorder.launches
    result = job.execute_in_process(
        run_config=segment.run_config,
        tags=segment.all_tags,
        instance=dagster_instance,
        raise_on_error=False,
    )

    assert result.success
    assert RunStore(url).get_run(run_id).status == "completed"
    # One key for the logical call: the retried attempt presented call 1 again.
    assert server.keys == [f"{run_id}:b:1"]
    b = world.step(url, run_id, "b")
    assert (b.status, b.attempt, b.call_number) == ("completed", 2, 1)


def test_a_live_step_is_left_alone(dagster_instance: DagsterInstance) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    compile_text(TWO_STEPS, url)
    run_id, _ = _mid_step(url, dagster_instance, DagsterRunStatus.STARTED)

    assert "no orphaned" in (_tick(dagster_instance, url).skip_message or "")

    assert _statuses(url, run_id) == {"a": "completed", "b": "running"}
    assert RunStore(url).get_run(run_id).status == "running"


def test_an_expired_lease_fails_the_step_and_ends_the_dagster_run(
    dagster_instance: DagsterInstance,
) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    compile_text(TWO_STEPS, url)
    run_id, _ = _mid_step(url, dagster_instance, DagsterRunStatus.STARTED)
    later = datetime.now(UTC) + timedelta(seconds=91)

    reaped = reap(
        RunStore(url), dagster_owner_statuses(dagster_instance), lease_seconds=90, now=later
    )

    assert [(r.step_id, r.owner_status) for r in reaped] == [("b", "STARTED")]
    assert "no heartbeat" in reaped[0].reason
    assert _statuses(url, run_id) == {"a": "completed", "b": "failed"}
    assert RunStore(url).get_run(run_id).status == "failed"
    # Just before the lease ends nothing would have happened: a fresh run shows it.
    fresh, _ = _mid_step(url, dagster_instance, DagsterRunStatus.STARTED)
    early = datetime.now(UTC) + timedelta(seconds=60)
    assert (
        reap(RunStore(url), dagster_owner_statuses(dagster_instance), lease_seconds=90, now=early)
        == []
    )
    assert _statuses(url, fresh)["b"] == "running"


def test_the_sensor_ends_a_dagster_run_whose_lease_expired(
    dagster_instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    compile_text(TWO_STEPS, url)
    run_id, owner = _mid_step(url, dagster_instance, DagsterRunStatus.STARTED)
    # A lease shorter than the time since the step started: its worker is presumed dead.
    monkeypatch.setenv("BATON_SENSORS__STEP_LEASE_SECONDS", "0.001")
    from baton.settings import get_settings

    get_settings.cache_clear()
    try:
        _tick(dagster_instance, url)
    finally:
        monkeypatch.delenv("BATON_SENSORS__STEP_LEASE_SECONDS")
        get_settings.cache_clear()

    assert _statuses(url, run_id)["b"] == "failed"
    dagster_run = dagster_instance.get_run_by_id(owner)
    assert dagster_run is not None and dagster_run.status == DagsterRunStatus.FAILURE


def test_a_force_terminated_run_with_no_step_running_fails(
    dagster_instance: DagsterInstance,
) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    compile_text(TWO_STEPS, url)
    store = RunStore(url)
    run_id = store.create_run(organization="global", slug="two", version=1, inputs={})
    owner = _dagster_run(dagster_instance, run_id, DagsterRunStatus.CANCELED)
    store.begin_segment(run_id=run_id, dagster_run_id=owner, steps=PLAN)

    _tick(dagster_instance, url)

    run = store.get_run(run_id)
    assert run.status == "failed"
    assert (run.error or {})["message"] == f"its Dagster run {owner} ended CANCELED"
    assert _statuses(url, run_id) == {"a": "pending", "b": "pending"}
