"""The run-failure sensor marks an orchestration run failed when its Dagster run died."""

from __future__ import annotations

import uuid

from dagster import (
    DagsterEventType,
    DagsterInstance,
    build_run_status_sensor_context,
    instance_for_test,
    job,
    op,
)

from baton.store.service import RunStore
from orchestration_defs.compiler.resources import BatonStoreResource
from sensors.run_failure import baton_run_failure_sensor
from tests.helpers import compile_text

ONE_STEP = """
slug: one
name: One
version: 1
steps:
  - id: a
    agent: echo
"""


@op
def crash() -> None:
    raise RuntimeError("the worker died before any Baton op could record it")


@job
def crashing_job() -> None:
    crash()


def failure_context(instance: DagsterInstance, tags: dict[str, str]):  # type: ignore[no-untyped-def]
    result = crashing_job.execute_in_process(instance=instance, tags=tags, raise_on_error=False)
    run = instance.get_run_by_id(result.run_id)
    event = next(e for e in result.all_events if e.event_type == DagsterEventType.RUN_FAILURE)
    return build_run_status_sensor_context(
        sensor_name=baton_run_failure_sensor.name,
        dagster_event=event,
        dagster_instance=instance,
        dagster_run=run,
    ).for_run_failure()


def test_a_failed_dagster_run_fails_its_orchestration_run(sqlite_db: str) -> None:
    compile_text(ONE_STEP, sqlite_db)
    store = RunStore(sqlite_db)
    run_id = store.create_run(
        organization="global", slug="one", version=1, inputs={}, segment="seg-1"
    )
    store.begin_segment(run_id=run_id, dagster_run_id="x", steps=[], segment="seg-1")
    with instance_for_test() as instance:
        tags = {"baton/run_id": str(run_id), "baton/segment": "seg-1"}
        context = failure_context(instance, tags)
        baton_run_failure_sensor(context, baton_store=BatonStoreResource(database_url=sqlite_db))
    run = store.get_run(run_id)
    assert run.status == "failed"
    assert run.error["type"] == "DagsterRunFailure"


def test_a_superseded_segment_that_fails_says_nothing_about_the_run(sqlite_db: str) -> None:
    compile_text(ONE_STEP, sqlite_db)
    store = RunStore(sqlite_db)
    run_id = store.create_run(
        organization="global", slug="one", version=1, inputs={}, segment="seg-2"
    )
    store.begin_segment(run_id=run_id, dagster_run_id="x", steps=[], segment="seg-2")
    with instance_for_test() as instance:
        tags = {"baton/run_id": str(run_id), "baton/segment": "seg-1"}
        context = failure_context(instance, tags)
        baton_run_failure_sensor(context, baton_store=BatonStoreResource(database_url=sqlite_db))
    assert store.get_run(run_id).status == "running"


def test_runs_without_the_tag_and_finished_runs_are_left_alone(sqlite_db: str) -> None:
    compile_text(ONE_STEP, sqlite_db)
    store = RunStore(sqlite_db)
    run_id = store.create_run(organization="global", slug="one", version=1, inputs={})
    store.begin_segment(run_id=run_id, dagster_run_id="x", steps=[])
    store.complete_run(run_id, {})
    resource = BatonStoreResource(database_url=sqlite_db)
    with instance_for_test() as instance:
        baton_run_failure_sensor(failure_context(instance, {}), baton_store=resource)
        tagged = failure_context(instance, {"baton/run_id": str(run_id)})
        baton_run_failure_sensor(tagged, baton_store=resource)
        unknown = failure_context(instance, {"baton/run_id": str(uuid.uuid4())})
        baton_run_failure_sensor(unknown, baton_store=resource)
    assert store.get_run(run_id).status == "completed"
