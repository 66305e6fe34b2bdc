"""Honest status in Dagster: what an orchestration run's segments show in the Dagster UI.

A segment that ends at a checkpoint ends *successfully* in Dagster (nothing is held while a
person thinks), and an ``abort`` decision launches nothing, so without help the last segment
of an aborted run stays green. Two things fix what the UI shows:

- the ``baton/status`` tag on every segment carries the orchestration run's current status
  (running, awaiting_approval, completed, failed, aborted), so the runs list filters on it;
- the last segment of an aborted run ends Canceled, of a failed run Failure. A segment still in
  progress is canceled through the run coordinator; one that already ended SUCCESS gets
  Dagster's own ``RUN_CANCELED`` / ``RUN_FAILURE`` event reported, which moves its row in run
  storage (the status column the runs list and its status filter read) to that status.

Dagster is imported inside the functions: the core imports this module without paying for it.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Literal

from baton.segments import RUN_TAG, STATUS_TAG

if TYPE_CHECKING:
    from dagster import DagsterInstance
    from dagster._core.storage.dagster_run import DagsterRun

TAG_VALUES = frozenset({"running", "awaiting_approval", "completed", "failed", "aborted"})
# What the last segment of a run ending in this status must show in Dagster.
SETTLED = {"aborted": "CANCELED", "failed": "FAILURE"}

Settled = Literal[
    "missing",  # no such Dagster run (deleted, or another instance)
    "tagged",  # the status needs no change of the Dagster status; only the tag was set
    "already",  # the segment already shows an end that is not Success
    "reported",  # it had ended SUCCESS; the true outcome is now recorded over it
    "canceling",  # it was queued or running; cancellation was requested
    "in_progress",  # a failed run's segment still running: it ends Failure by itself
    "cancel_failed",  # the run launcher could not reach the segment to cancel it
]


def tag_value(run_status: str) -> str:
    """The ``baton/status`` value for an orchestration run status (pending shows running)."""
    if run_status == "pending":
        return "running"
    if run_status not in TAG_VALUES:
        raise ValueError(f"not an orchestration run status: {run_status!r}")
    return run_status


def tag_status(instance: DagsterInstance, dagster_run_id: str, status: str) -> bool:
    """Set the ``baton/status`` tag of one Dagster run; False if the run does not exist."""
    value = tag_value(status)
    run = instance.get_run_by_id(dagster_run_id)
    if run is None:
        return False
    if run.tags.get(STATUS_TAG) != value:
        instance.add_run_tags(dagster_run_id, {STATUS_TAG: value})
    return True


def tag_run_segments(instance: DagsterInstance, run_id: uuid.UUID | str, status: str) -> list[str]:
    """Tag every segment of orchestration run ``run_id`` with its status; returns their ids.

    Earlier segments follow too, so filtering ``baton/status=awaiting_approval`` lists only
    runs that wait now, not ones that waited once.
    """
    from dagster import RunsFilter

    value = tag_value(status)
    runs = instance.get_runs(filters=RunsFilter(tags={RUN_TAG: str(run_id)}))
    for run in runs:
        if run.tags.get(STATUS_TAG) != value:
            instance.add_run_tags(run.run_id, {STATUS_TAG: value})
    return [run.run_id for run in runs]


def settle_last_segment(
    instance: DagsterInstance, dagster_run_id: str, status: str, reason: str | None = None
) -> Settled:
    """Make the last segment of a run show its true end: Canceled if aborted, Failure if failed.

    ``reason`` (already masked: it is written to Dagster's event log) says why. Also sets the
    ``baton/status`` tag. Safe to call again: a settled segment is left as it is.
    """
    if not tag_status(instance, dagster_run_id, status):
        return "missing"
    target = SETTLED.get(status)
    if target is None:
        return "tagged"
    run = instance.get_run_by_id(dagster_run_id)
    assert run is not None  # tag_status just found it; runs are not deleted under us
    if run.is_finished:
        return _settle_finished(instance, run, status, reason)
    return _settle_in_progress(instance, run, status)


def settle_run(
    instance: DagsterInstance,
    run_id: uuid.UUID | str,
    status: str,
    *,
    last_dagster_run_id: str | None,
    reason: str | None = None,
) -> Settled:
    """Tag every segment of the run and settle its last one (what callers usually want)."""
    tag_run_segments(instance, run_id, status)
    if not last_dagster_run_id:
        return "missing"
    return settle_last_segment(instance, last_dagster_run_id, status, reason)


def _settle_finished(
    instance: DagsterInstance, run: DagsterRun, status: str, reason: str | None
) -> Settled:
    from dagster import DagsterRunStatus

    if run.status != DagsterRunStatus.SUCCESS:
        # Failure or Canceled already tells the truth (an aborted run whose segment failed
        # stays Failure: that is what happened to the segment).
        return "already"
    message = _message(status, reason)
    # Run storage applies a run-status event to the run's row whatever its current status, so
    # reporting the event Dagster itself writes for a cancel/failure moves SUCCESS to it.
    if status == "aborted":
        instance.report_run_canceled(run, message=message)
    else:
        instance.report_run_failed(run, message=message)
    return "reported"


def _settle_in_progress(instance: DagsterInstance, run: DagsterRun, status: str) -> Settled:
    from dagster import DagsterRunStatus

    if run.status == DagsterRunStatus.CANCELING:
        return "canceling"
    # A failed run's running segment is normally the one failing: a step recorded the failure
    # and is raising. Canceling it would turn that Failure into Canceled, so let it end. A
    # queued segment of a failed run would only start work on it: cancel that.
    if status == "failed" and run.status not in (
        DagsterRunStatus.QUEUED,
        DagsterRunStatus.NOT_STARTED,
    ):
        return "in_progress"
    try:
        canceled = instance.run_coordinator.cancel_run(run.run_id)
    except Exception:  # the launcher's RPC failed: run monitoring ends a dead worker's run
        return "cancel_failed"
    return "canceling" if canceled else "cancel_failed"


def _message(status: str, reason: str | None) -> str:
    what = "aborted" if status == "aborted" else "failed"
    detail = f": {reason}" if reason else ""
    return f"Baton: the orchestration run {what}{detail}. This segment had ended successfully."
