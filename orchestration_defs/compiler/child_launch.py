"""Launching segments from inside a run worker: a parent's children, a parent's resume.

A run worker has no workspace (no code server), but it runs inside Baton's code location and
its Dagster run carries the location's origins. A segment of another job of the same location
is created from that job's definition with those origins and handed to the queued run
coordinator, whose daemon starts it (within its dequeue interval, 1 s as shipped). Anywhere
else (Dagster's default coordinator, a test's in-process run) it refuses with the reason, and
the caller hands the claim back to the children sensor.
"""

from __future__ import annotations

import uuid

from dagster import OpExecutionContext
from dagster._core.origin import JobPythonOrigin
from dagster._core.remote_origin import RemoteJobOrigin
from dagster._core.run_coordinator import QueuedRunCoordinator

from baton.dagster_status import settle_run
from baton.lifecycle import Lifecycle
from baton.segments import SegmentPlan
from baton.store.service import RunStore


class WorkerLaunchError(Exception):
    """This run worker cannot start the segment itself; the children sensor will."""


class WorkerLauncher:
    """A ``baton.lifecycle.Launcher`` for ops: queues segments of the op's code location."""

    def __init__(self, context: OpExecutionContext) -> None:
        self.context = context

    def launch(self, segment: SegmentPlan) -> str:
        instance = self.context.instance
        run = self.context.run
        if not isinstance(instance.run_coordinator, QueuedRunCoordinator):
            raise WorkerLaunchError("the instance has no queued run coordinator")
        if run.remote_job_origin is None or run.job_code_origin is None:
            raise WorkerLaunchError("this Dagster run has no code location origin")
        repository = self.context.repository_def
        if not repository.has_job(segment.job_name):
            raise WorkerLaunchError(f"no job '{segment.job_name}' in this code location")
        job = repository.get_job(segment.job_name)
        created = instance.create_run_for_job(
            job,
            run_config=segment.run_config,
            tags={**job.tags, **segment.all_tags},
            remote_job_origin=RemoteJobOrigin(
                repository_origin=run.remote_job_origin.repository_origin,
                job_name=segment.job_name,
            ),
            job_code_origin=JobPythonOrigin(
                segment.job_name, run.job_code_origin.repository_origin
            ),
        )
        instance.submit_run(created.run_id, workspace=None)  # type: ignore[arg-type]
        return created.run_id

    def settle(
        self, run_id: uuid.UUID, status: str, *, last_dagster_run_id: str | None, reason: str
    ) -> None:
        settle_run(
            self.context.instance,
            run_id,
            status,
            last_dagster_run_id=last_dagster_run_id,
            reason=reason,
        )


def child_ended(context: OpExecutionContext, store: RunStore, run_id: uuid.UUID) -> None:
    """The fast path of a child's end, from its own run worker: the next children or the
    parent's resume. A problem here is left to the children sensor, never fails the child."""
    try:
        Lifecycle(store, WorkerLauncher(context), via="worker").child_ended(run_id)
    except Exception as exc:
        context.log.warning(
            f"could not advance the parent of {run_id} ({type(exc).__name__}); the children "
            "sensor will"
        )
