"""The segment status sensor on a real instance (SQLite and Postgres): checkpoint runs paused by
the compiled ops, ended by their timeout outside any segment, settled by the sensor's ticks."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    JobDefinition,
    RunsFilter,
    SensorResult,
    build_sensor_context,
)

from baton.approvals import Approvals
from baton.segments import RUN_TAG, STATUS_TAG
from baton.store.events import EventsRepository
from baton.store.service import RunStore, StepPlan
from orchestration_defs.compiler.resources import BatonStoreResource
from sensors.segment_status import _Event, _visible, baton_segment_status_sensor
from tests.checkpoint_helpers import start
from tests.helpers import compile_text, execute

REVIEW = """
slug: status-review
name: Status review
version: 1
inputs:
  topic: {type: string, default: dagster}
  on_timeout: {type: string, default: abort}
steps:
  - id: draft
    agent: echo
    with: {title: "{{ inputs.topic }}"}
  - id: review
    checkpoint:
      prompt: "Publish {{ steps.draft.output.title | upper }} about {{ inputs.topic }}?"
      show: "{{ steps.draft.output }}"
      timeout: 1h
      on_timeout: {{action}}
outputs:
  post: "{{ steps.review.output.value }}"
"""
HELLO = """
slug: status-hello
name: Status hello
version: 1
steps:
  - id: greet
    agent: echo
    with: {text: hi}
outputs:
  text: "{{ steps.greet.output.text }}"
"""


def _url(instance: DagsterInstance) -> str:
    return instance.baton_db_url  # type: ignore[attr-defined]


def _review(url: str, action: str) -> JobDefinition:
    text = REVIEW.replace("{{action}}", action).replace("status-review", f"status-{action}")
    return compile_text(text, url)[1]


def _tick(instance: DagsterInstance, url: str, cursor: str | None) -> SensorResult:
    context = build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"baton_store": BatonStoreResource(database_url=url)},
    )
    result = baton_segment_status_sensor(context)
    assert isinstance(result, SensorResult)
    assert not result.run_requests
    return result


def _reason(result: SensorResult) -> str:
    assert result.skip_reason is not None
    return result.skip_reason.skip_message or ""


def _segments(instance: DagsterInstance, run_id: uuid.UUID) -> list:  # type: ignore[type-arg]
    return list(instance.get_runs(filters=RunsFilter(tags={RUN_TAG: str(run_id)})))


def _last_sequence(url: str) -> int:
    with RunStore(url).session() as s:
        return max(e.sequence for e in EventsRepository(s).list(limit=10_000))


def _time_out(url: str) -> None:
    later = datetime.now(UTC) + timedelta(hours=2)
    assert Approvals(RunStore(url)).expire_due(now=later)


def test_the_checkpoint_op_tags_its_segment_and_shows_its_prompt(
    dagster_instance: DagsterInstance,
) -> None:
    url = _url(dagster_instance)
    job = _review(url, "abort")
    run_id = start(job, dagster_instance, url)
    [segment] = _segments(dagster_instance, run_id)
    assert segment.status == DagsterRunStatus.SUCCESS
    assert segment.tags[STATUS_TAG] == "awaiting_approval"
    waiting = RunsFilter(tags={STATUS_TAG: "awaiting_approval"})
    assert dagster_instance.get_run_ids(filters=waiting) == [segment.run_id]
    description = job.graph.node_named("status_abort__review").definition.description
    assert description == "Checkpoint: Publish <steps.draft.output.title> about <inputs.topic>?"


@pytest.mark.parametrize(
    ("action", "dagster_status"),
    [("abort", DagsterRunStatus.CANCELED), ("fail", DagsterRunStatus.FAILURE)],
)
def test_a_timeout_outside_any_segment_settles_it_on_the_next_tick(
    dagster_instance: DagsterInstance, action: str, dagster_status: DagsterRunStatus
) -> None:
    url = _url(dagster_instance)
    run_id = start(_review(url, action), dagster_instance, url)
    first = _tick(dagster_instance, url, None)
    assert "1 segment(s) tagged awaiting_approval" in _reason(first)
    _time_out(url)  # the timeout sensor's logic: the run ends, nothing is launched
    run_status = "aborted" if action == "abort" else "failed"
    assert RunStore(url).get_run(run_id).status == run_status

    settled = _tick(dagster_instance, url, first.cursor)
    assert f"{run_status}; last segment" in _reason(settled)
    assert "had ended Success, now recorded as its true end" in _reason(settled)
    assert settled.cursor == str(_last_sequence(url))
    [segment] = _segments(dagster_instance, run_id)
    assert segment.status == dagster_status
    assert segment.tags[STATUS_TAG] == run_status
    # The runs list's status filter (what the UI's filter asks) finds it; Success does not.
    assert dagster_instance.get_run_ids(filters=RunsFilter(statuses=[dagster_status])) == [
        segment.run_id
    ]
    assert not dagster_instance.get_run_ids(filters=RunsFilter(statuses=[DagsterRunStatus.SUCCESS]))

    idle = _tick(dagster_instance, url, settled.cursor)
    assert idle.cursor == settled.cursor
    assert "no new Baton event" in _reason(idle)
    # From the start again (a reset cursor): the same end, nothing reported twice.
    again = _tick(dagster_instance, url, None)
    assert "already shows it" in _reason(again)
    [segment] = _segments(dagster_instance, run_id)
    assert segment.status == dagster_status


def test_a_completed_run_keeps_success_and_its_tag(dagster_instance: DagsterInstance) -> None:
    url = _url(dagster_instance)
    _, job = compile_text(HELLO, url)
    result = execute(job, dagster_instance, url)
    assert result.success
    segment = dagster_instance.get_run_by_id(result.run_id)
    assert segment is not None and segment.tags[STATUS_TAG] == "completed"  # the finish op
    tick = _tick(dagster_instance, url, None)
    assert "1 segment(s) tagged completed" in _reason(tick)
    segment = dagster_instance.get_run_by_id(result.run_id)
    assert segment is not None and segment.status == DagsterRunStatus.SUCCESS


def test_a_failed_runs_running_segment_is_looked_at_again(
    dagster_instance: DagsterInstance,
) -> None:
    url = _url(dagster_instance)
    _, job = compile_text(HELLO, url)
    store = RunStore(url)
    run_id = store.create_run(organization="global", slug="status-hello", version=1, inputs={})
    running = dagster_instance.create_run_for_job(
        job, tags={RUN_TAG: str(run_id)}, status=DagsterRunStatus.STARTED
    )
    store.begin_segment(
        run_id=run_id,
        dagster_run_id=running.run_id,
        steps=[StepPlan("greet", "agent", "echo")],
    )
    before = _tick(dagster_instance, url, None).cursor
    assert store.fail_run(run_id, {"message": "greet failed"})
    held = _tick(dagster_instance, url, before)
    assert "ends Failure by itself" in _reason(held)
    assert held.cursor == before  # the run.failed event is read again next tick
    segment = dagster_instance.get_run_by_id(running.run_id)
    assert segment is not None
    assert segment.status == DagsterRunStatus.STARTED and segment.tags[STATUS_TAG] == "failed"


def test_events_naming_no_run_status_change(dagster_instance: DagsterInstance) -> None:
    url = _url(dagster_instance)
    store = RunStore(url)
    compile_text(HELLO, url)
    store.create_run(organization="global", slug="status-hello", version=1, inputs={})
    result = _tick(dagster_instance, url, None)
    assert "none changes a run's status in Dagster" in _reason(result)
    assert result.cursor == str(_last_sequence(url))


def test_a_young_gap_stops_the_cursor_an_old_one_is_passed() -> None:
    now = datetime.now(UTC)
    old, young = now - timedelta(minutes=1), now - timedelta(seconds=1)

    def event(sequence: int, created: datetime) -> _Event:
        return _Event(sequence, "run.completed", uuid.uuid4(), created)

    # 12 is visible while 11 may still be committing: stop at 10.
    kept = _visible([event(10, young), event(12, young)], 9, now)
    assert [e.sequence for e in kept] == [10]
    # Long gone (rolled back, or deleted with its run): pass it.
    kept = _visible([event(10, old), event(12, old), event(13, young)], 9, now)
    assert [e.sequence for e in kept] == [10, 12, 13]
