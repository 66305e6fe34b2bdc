"""What a run's segments show in Dagster, on a real instance (SQLite and Postgres storage).

A segment that ended SUCCESS is settled by reporting Dagster's own cancel/failure event; the
runs list (run storage's status column) and its status filter, the one the UI's runs page
uses, then find it under Canceled or Failure.
"""

from __future__ import annotations

import uuid

import pytest
from dagster import (
    DagsterEvent,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    RunsFilter,
    job,
    op,
)
from dagster._core.remote_origin import (
    InProcessCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from baton.dagster_status import (
    settle_last_segment,
    settle_run,
    tag_run_segments,
    tag_status,
    tag_value,
)
from baton.segments import RUN_TAG, STATUS_TAG


@op
def noop() -> None:
    pass


@job
def segment() -> None:
    noop()


def _succeeded(instance: DagsterInstance, run_id: uuid.UUID, status: str = "") -> str:
    """A segment of ``run_id`` that really ran and ended SUCCESS."""
    tags = {RUN_TAG: str(run_id), **({STATUS_TAG: status} if status else {})}
    result = segment.execute_in_process(instance=instance, tags=tags)
    assert result.success
    return result.run_id


def _created(instance: DagsterInstance, run_id: uuid.UUID, status: DagsterRunStatus) -> str:
    run = instance.create_run_for_job(segment, tags={RUN_TAG: str(run_id)}, status=status)
    return run.run_id


def _queued(instance: DagsterInstance, run_id: uuid.UUID) -> str:
    """A segment in the queue, as the QueuedRunCoordinator leaves one for the daemon."""
    # A queued run must say where the daemon would load its job from: this module.
    location = InProcessCodeLocationOrigin(LoadableTargetOrigin(python_file=__file__))
    origin = RemoteJobOrigin(RemoteRepositoryOrigin(location, "__repository__"), segment.name)
    run = instance.create_run_for_job(
        segment,
        tags={RUN_TAG: str(run_id)},
        status=DagsterRunStatus.NOT_STARTED,
        remote_job_origin=origin,
    )
    dagster_run_id = run.run_id
    enqueued = DagsterEvent(
        event_type_value=DagsterEventType.PIPELINE_ENQUEUED.value, job_name=segment.name
    )
    instance.report_dagster_event(enqueued, run_id=dagster_run_id)
    assert _status(instance, dagster_run_id) == DagsterRunStatus.QUEUED
    return dagster_run_id


def _status(instance: DagsterInstance, dagster_run_id: str) -> DagsterRunStatus:
    run = instance.get_run_by_id(dagster_run_id)
    assert run is not None
    return run.status


def _listed(instance: DagsterInstance, status: DagsterRunStatus) -> set[str]:
    return set(instance.get_run_ids(filters=RunsFilter(statuses=[status])))


def test_tag_values() -> None:
    assert tag_value("pending") == "running"
    assert tag_value("awaiting_approval") == "awaiting_approval"
    with pytest.raises(ValueError):
        tag_value("resuming")


def test_an_aborted_runs_successful_segment_shows_canceled(
    dagster_instance: DagsterInstance,
) -> None:
    run_id = uuid.uuid4()
    dagster_run_id = _succeeded(dagster_instance, run_id, "awaiting_approval")
    outcome = settle_last_segment(
        dagster_instance, dagster_run_id, "aborted", "aborted at checkpoint 'review' by ann"
    )
    assert outcome == "reported"
    run = dagster_instance.get_run_by_id(dagster_run_id)
    assert run is not None
    assert run.status == DagsterRunStatus.CANCELED
    assert run.tags[STATUS_TAG] == "aborted"
    # The runs list's status filter finds it under Canceled, no longer under Success.
    assert dagster_run_id in _listed(dagster_instance, DagsterRunStatus.CANCELED)
    assert dagster_run_id not in _listed(dagster_instance, DagsterRunStatus.SUCCESS)
    # So does the tag filter, and the reason is in the run's event log.
    tagged = RunsFilter(tags={STATUS_TAG: "aborted"})
    assert dagster_instance.get_run_ids(filters=tagged) == [dagster_run_id]
    messages = [e.message for e in dagster_instance.all_logs(dagster_run_id)]
    assert any("by ann" in (m or "") for m in messages)
    # Again: nothing more happens.
    assert settle_last_segment(dagster_instance, dagster_run_id, "aborted") == "already"
    assert len(dagster_instance.all_logs(dagster_run_id)) == len(messages)


def test_a_failed_runs_successful_segment_shows_failure(
    dagster_instance: DagsterInstance,
) -> None:
    dagster_run_id = _succeeded(dagster_instance, uuid.uuid4())
    reason = "checkpoint 'review' timed out (fail)"
    assert settle_last_segment(dagster_instance, dagster_run_id, "failed", reason) == "reported"
    assert _status(dagster_instance, dagster_run_id) == DagsterRunStatus.FAILURE
    assert dagster_run_id in _listed(dagster_instance, DagsterRunStatus.FAILURE)
    assert dagster_run_id not in _listed(dagster_instance, DagsterRunStatus.SUCCESS)


def test_a_queued_segment_of_an_aborted_run_is_canceled(
    dagster_instance: DagsterInstance,
) -> None:
    queued = _queued(dagster_instance, uuid.uuid4())
    assert settle_last_segment(dagster_instance, queued, "aborted") == "canceling"
    assert _status(dagster_instance, queued) == DagsterRunStatus.CANCELED


def test_a_running_segment_of_a_failed_run_is_left_to_fail(
    dagster_instance: DagsterInstance,
) -> None:
    started = _created(dagster_instance, uuid.uuid4(), DagsterRunStatus.STARTED)
    assert settle_last_segment(dagster_instance, started, "failed", "step x failed") == (
        "in_progress"
    )
    assert _status(dagster_instance, started) == DagsterRunStatus.STARTED
    run = dagster_instance.get_run_by_id(started)
    assert run is not None and run.tags[STATUS_TAG] == "failed"


def test_a_running_segment_without_a_reachable_worker(dagster_instance: DagsterInstance) -> None:
    # No run worker was ever started for it, so the launcher has no one to send the cancel to;
    # the run is left Canceling for the daemon's run monitoring.
    started = _created(dagster_instance, uuid.uuid4(), DagsterRunStatus.STARTED)
    assert settle_last_segment(dagster_instance, started, "aborted") == "cancel_failed"
    assert _status(dagster_instance, started) == DagsterRunStatus.CANCELING


def test_a_failed_segment_stays_failure_when_the_run_is_aborted(
    dagster_instance: DagsterInstance,
) -> None:
    failed = _created(dagster_instance, uuid.uuid4(), DagsterRunStatus.FAILURE)
    assert settle_last_segment(dagster_instance, failed, "aborted") == "already"
    assert _status(dagster_instance, failed) == DagsterRunStatus.FAILURE


def test_completed_and_waiting_only_tag(dagster_instance: DagsterInstance) -> None:
    dagster_run_id = _succeeded(dagster_instance, uuid.uuid4())
    assert settle_last_segment(dagster_instance, dagster_run_id, "completed") == "tagged"
    assert _status(dagster_instance, dagster_run_id) == DagsterRunStatus.SUCCESS
    assert tag_status(dagster_instance, dagster_run_id, "awaiting_approval")
    run = dagster_instance.get_run_by_id(dagster_run_id)
    assert run is not None and run.tags[STATUS_TAG] == "awaiting_approval"


def test_a_missing_dagster_run(dagster_instance: DagsterInstance) -> None:
    assert not tag_status(dagster_instance, "0" * 36, "aborted")
    assert settle_last_segment(dagster_instance, "0" * 36, "aborted") == "missing"


def test_every_segment_follows_the_run(dagster_instance: DagsterInstance) -> None:
    run_id = uuid.uuid4()
    first = _succeeded(dagster_instance, run_id, "awaiting_approval")
    second = _succeeded(dagster_instance, run_id, "running")
    other = _succeeded(dagster_instance, uuid.uuid4(), "awaiting_approval")
    assert sorted(tag_run_segments(dagster_instance, run_id, "completed")) == sorted(
        [first, second]
    )
    waiting = RunsFilter(tags={STATUS_TAG: "awaiting_approval"})
    assert dagster_instance.get_run_ids(filters=waiting) == [other]

    outcome = settle_run(
        dagster_instance, run_id, "aborted", last_dagster_run_id=second, reason="by ann"
    )
    assert outcome == "reported"
    assert _status(dagster_instance, second) == DagsterRunStatus.CANCELED
    # Earlier segments keep their own end (they did stop at a checkpoint), tagged aborted.
    assert _status(dagster_instance, first) == DagsterRunStatus.SUCCESS
    aborted = RunsFilter(tags={STATUS_TAG: "aborted"})
    assert sorted(dagster_instance.get_run_ids(filters=aborted)) == sorted([first, second])
    assert settle_run(dagster_instance, run_id, "aborted", last_dagster_run_id=None) == "missing"
