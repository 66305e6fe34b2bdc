"""Segments: the one owner of how a Dagster run continues an orchestration run.

A *segment* is one Dagster run of an orchestration run's job (design notes: "Two kinds of
run"). Everything that starts one (the CLI, the API, the approvals page, the approval and
webhook sensors, later child runs) asks this module for its job name, run config and tags, and
either launches it now (``launch_now``) or turns it into the ``RunRequest`` a sensor returns
(``run_request``). Nothing else composes them.

Each plan carries a fresh segment id. It is written to the orchestration run with a
compare-and-set before the launch (``RunStore.claim_segment``) and travels as the
``baton/segment`` tag; the start op and every step check it again, so of two segments
launched for one run only the newest does work (one active segment per run).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orchestration_defs.language.models import job_name, pinned_job_name

if TYPE_CHECKING:
    from dagster import RunRequest

RUN_TAG = "baton/run_id"
SEGMENT_TAG = "baton/segment"
STATUS_TAG = "baton/status"
APPROVAL_TAG = "baton/approval_id"
CONTINUES_TAG = "baton/continues"
DECISION_TAG = "baton/decision"
LAUNCHED_BY_TAG = "baton/launched_by"
USER_TAG = "baton/user"
# A segment that runs a run's compensations (baton.compensation), not its steps.
COMPENSATION_TAG = "baton/compensation"
# The compensation job of a job: ``<job>__compensate``.
COMPENSATION_SUFFIX = "__compensate"
# Lineage of a child run's segments (docs/sub-orchestrations.md): filtering the Dagster UI by
# ROOT_TAG lists every segment of a tree below its root.
PARENT_RUN_TAG = "baton/parent_run_id"
ROOT_RUN_TAG = "baton/root_run_id"
PARENT_STEP_TAG = "baton/parent_step"
# An optional config field of the start op, kept so runs launched by older Baton still start;
# segments carry their run in RUN_TAG instead.
RUN_ID_FIELD = "baton_run_id"


def job_for(slug: str, version: int, newest: int | None) -> str:
    """The job a run of ``slug`` v``version`` continues on: the slug's job while its version
    is the newest stored, else the pinned job kept for its version."""
    if newest is None or newest == version:
        return job_name(slug)
    return pinned_job_name(slug, version)


def compensation_job(job: str) -> str:
    """The job that runs the compensations of a run of ``job``."""
    return f"{job}{COMPENSATION_SUFFIX}"


def compensated_job(job: str) -> str | None:
    """The job whose runs ``job`` compensates; None if it is no compensation job."""
    if job.endswith(COMPENSATION_SUFFIX):
        return job[: -len(COMPENSATION_SUFFIX)]
    return None


def segment_of_dagster_run(run: Any) -> str:
    """The segment a Dagster run is: Baton's tag for a run Baton launched, else its own id.

    A Dagster re-execution is a segment of its own: the ``baton/segment`` tag it copied from
    its parent names the segment it re-executes, not itself.
    """
    if run.parent_run_id is None and run.tags.get(SEGMENT_TAG):
        return str(run.tags[SEGMENT_TAG])
    return str(run.run_id)


def lineage_tags(run: Any, *, has_children: bool = False) -> dict[str, str]:
    """Tags that place a run's segments in its tree: a child's parent, root and parent step
    (``parent_step[index]`` under ``for_each``); a parent's own id as the root it is. Runs
    without a parent or children get none."""
    if run.parent_run_id is None:
        return {ROOT_RUN_TAG: str(run.id)} if has_children else {}
    step = str(run.parent_step_id)
    if run.parent_step_index is not None:
        step = f"{step}[{run.parent_step_index}]"
    return {
        PARENT_RUN_TAG: str(run.parent_run_id),
        ROOT_RUN_TAG: str(run.root_run_id or run.parent_run_id),
        PARENT_STEP_TAG: step,
    }


def run_config(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Run config of a segment: the inputs (already masked). The run it continues travels in
    the ``baton/run_id`` tag, so the launchpad never shows Baton's internal ids."""
    return {"inputs": dict(inputs)}


@dataclass(frozen=True)
class SegmentPlan:
    """Everything a launch of one segment needs: where, with what, tagged how."""

    run_id: uuid.UUID
    job_name: str
    run_config: dict[str, Any]
    tags: dict[str, str]
    segment_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    run_key: str | None = None

    @property
    def all_tags(self) -> dict[str, str]:
        return {**self.tags, RUN_TAG: str(self.run_id), SEGMENT_TAG: self.segment_id}


def plan(
    run_id: uuid.UUID,
    *,
    job: str,
    inputs: Mapping[str, Any],
    tags: Mapping[str, str] | None = None,
    run_key: str | None = None,
    segment_id: str | None = None,
) -> SegmentPlan:
    """A new segment of ``run_id`` on ``job``; ``inputs`` must already be masked."""
    return SegmentPlan(
        run_id=run_id,
        job_name=job,
        run_config=run_config(inputs),
        tags=dict(tags or {}),
        segment_id=segment_id or uuid.uuid4().hex,
        run_key=run_key,
    )


def run_request(segment: SegmentPlan) -> RunRequest:
    """The plan as a sensor's ``RunRequest`` (``run_key`` dedupes a tick evaluated twice)."""
    from dagster import RunRequest

    return RunRequest(
        run_key=segment.run_key,
        job_name=segment.job_name,
        run_config=segment.run_config,
        tags=segment.all_tags,
    )
