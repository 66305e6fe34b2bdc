"""Child runs: creating them, claiming their launches, and ending the parent step.

Every change is one transaction that first locks the parent run's row with an ``UPDATE`` (a
row lock on Postgres, the write lock on SQLite), so two children ending at the same moment
wait for each other: neither can claim a slot the other took, and only one of them moves the
parent ``awaiting_children -> running`` (a guarded update as well). The caller launches what
it is handed (``Advance.launch``); nothing here talks to Dagster.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from baton import segments
from baton.approvals import cancel_open
from baton.compensation import plan as plan_compensation
from baton.db.models import OrchestrationEvent, OrchestrationRun, OrchestrationStep, utcnow
from baton.edge import input_limits
from baton.settings import get_settings
from baton.state import TERMINAL_RUN_STATUSES, IllegalTransition
from baton.store.definitions import DefinitionsRepository
from baton.store.events import EventsRepository
from baton.store.runs import RunsRepository
from baton.store.service import RunStore
from baton.store.steps import StepsRepository
from orchestration_defs.language.inputs import InputError, resolve_inputs
from orchestration_defs.language.models import OrchestrationSpec

SENSOR = "sensor"


class ChildError(Exception):
    """Children that cannot be created: unknown child, inputs that do not fit, too deep."""


@dataclass(frozen=True)
class ChildRequest:
    """One orchestration step reached by a parent segment, with its children's inputs."""

    parent_id: uuid.UUID
    step_id: str
    orchestration: str
    version: int | None
    inputs: Sequence[dict[str, Any]]
    max_parallel: int | None
    on_child_failure: str
    dagster_run_id: str


@dataclass
class Advance:
    """What the caller of a change must do next: launch segments, settle ended runs in
    Dagster, and tell the grandparent when the parent itself ended."""

    launch: list[segments.SegmentPlan] = field(default_factory=list)
    settle: list[tuple[uuid.UUID, str, str | None, str]] = field(default_factory=list)
    ended: uuid.UUID | None = None
    output: dict[str, Any] | None = None


class Children:
    """Child-run operations on one store; ``via`` names the caller in claims and events."""

    def __init__(self, store: RunStore, *, via: str) -> None:
        self.store = store
        self.via = via

    # the parent step starts ------------------------------------------------------------

    def spawn(self, request: ChildRequest, *, max_depth: int) -> Advance:
        """Create every child (pending), put the step waiting and the parent awaiting
        children, and claim the first ``max_parallel`` launches. No children: the step
        completes at once with ``{"children": []}`` (``Advance.output``).

        Raises:
            ChildError: the child is not stored, its inputs do not fit, or it is too deep.
        """
        with self.store.session() as s:
            _lock(s, request.parent_id)
            parent = _get(s, request.parent_id)
            definition = _definition(s, parent.organization, request)
            spec = OrchestrationSpec.model_validate(definition.spec)
            values = [self._inputs(spec, i, given) for i, given in enumerate(request.inputs)]
            depth = _depth(s, parent) + 1
            if depth > max_depth:
                raise ChildError(
                    f"a child of run {parent.id} would be {depth} levels below its root; the "
                    f"limit is {max_depth} (BATON_CHILDREN__MAX_DEPTH)"
                )
            steps = StepsRepository(s)
            row = steps.start_attempt(
                parent.id,
                request.step_id,
                input=self.store.mask(_step_input(request, values)),
                dagster_run_id=request.dagster_run_id,
            )
            if not values:
                output: dict[str, Any] = {"children": []}
                steps.transition(parent.id, request.step_id, "completed", output=output)
                _event(s, parent, "step.completed", {"step_id": request.step_id, "children": 0})
                return Advance(output=output)
            children = [
                self._create(s, parent, definition, request.step_id, row.attempt, i, v)
                for i, v in enumerate(values)
            ]
            steps.transition(parent.id, request.step_id, "waiting")
            RunsRepository(s).transition(parent.id, "awaiting_children")
            _event(
                s,
                parent,
                "children.started",
                {
                    "step_id": request.step_id,
                    "orchestration": definition.slug,
                    "version": definition.version,
                    "children": [str(c.id) for c in children],
                    "max_parallel": request.max_parallel,
                },
            )
            return Advance(launch=self._claim_free(s, parent, request.step_id, row))

    def _inputs(self, spec: OrchestrationSpec, index: int, given: Any) -> dict[str, Any]:
        if not isinstance(given, dict):
            raise ChildError(
                f"child {index}: 'with' must give a mapping of inputs, got {type(given).__name__}"
            )
        try:
            return resolve_inputs(spec.inputs, given, input_limits(get_settings()))
        except InputError as exc:
            raise ChildError(
                f"child {index} of '{spec.slug}' v{spec.version}: {'; '.join(exc.problems)}"
            ) from None

    def _create(
        self,
        s: Session,
        parent: OrchestrationRun,
        definition: Any,
        step_id: str,
        attempt: int,
        index: int,
        inputs: dict[str, Any],
    ) -> OrchestrationRun:
        child = RunsRepository(s).create(
            definition,
            inputs=self.store.mask(inputs),
            created_by=parent.created_by,  # the root's launcher, passed down every level
            parent=parent,
            parent_step_id=step_id,
        )
        child.parent_step_index = index
        child.parent_step_attempt = attempt
        s.flush()
        _event(
            s,
            child,
            "run.created",
            {
                "orchestration": definition.slug,
                "version": definition.version,
                "created_by": parent.created_by,
                "parent_run_id": str(parent.id),
                "parent_step": step_id,
                "index": index,
            },
        )
        return child

    # a child ended -------------------------------------------------------------------------

    def child_ended(self, child_id: uuid.UUID) -> Advance:
        """A child reached a terminal state (or may have): advance its parent's step."""
        with self.store.session() as s:
            parent_id = s.scalar(
                select(OrchestrationRun.parent_run_id).where(OrchestrationRun.id == child_id)
            )
            if parent_id is None:
                return Advance()
            return self._advance(s, parent_id, child_id)

    def advance(self, parent_id: uuid.UUID) -> Advance:
        """Look at a waiting parent's children and do what is due (the sensor's entry)."""
        with self.store.session() as s:
            return self._advance(s, parent_id, None)

    def _advance(self, s: Session, parent_id: uuid.UUID, child_id: uuid.UUID | None) -> Advance:
        _lock(s, parent_id)
        parent = _get(s, parent_id)
        if parent.status != "awaiting_children":
            return Advance()  # resumed, failed or aborted already: the winner acted
        step = _waiting_step(s, parent_id)
        if step is None:
            return Advance()
        children = _children(s, parent_id, step)
        if child_id is not None:
            ended = next((c for c in children if c.id == child_id), None)
            if ended is None or ended.status not in TERMINAL_RUN_STATUSES:
                return Advance()  # an older attempt's child, or not ended after all
        _record_ends(s, parent, step.step_id, children)
        policy = (step.input or {}).get("on_child_failure", "fail")
        failed = [c for c in children if c.status in ("failed", "aborted")]
        if failed and policy == "fail":
            return self._fail_step(s, parent, step, failed[0], children)
        if all(c.status in TERMINAL_RUN_STATUSES for c in children):
            return self._resume(s, parent, step, children)
        return Advance(launch=self._claim_free(s, parent, step.step_id, step))

    def _claim_free(
        self, s: Session, parent: OrchestrationRun, step_id: str, step: OrchestrationStep
    ) -> list[segments.SegmentPlan]:
        """Claim launches, in index order, while fewer than ``max_parallel`` children run."""
        children = _children(s, parent.id, step)
        limit = (step.input or {}).get("max_parallel") or len(children)
        running = [c for c in children if c.segment_id and c.status not in TERMINAL_RUN_STATUSES]
        waiting = [c for c in children if c.segment_id is None and c.status == "pending"]
        plans = []
        for child in waiting[: max(0, limit - len(running))]:
            plans.append(self._claim(s, child))
        return plans

    def _claim(
        self, s: Session, run: OrchestrationRun, *, has_children: bool = False
    ) -> segments.SegmentPlan:
        plan = _plan(s, run, via=self.via, has_children=has_children)
        s.execute(
            update(OrchestrationRun)
            .where(OrchestrationRun.id == run.id)
            .values(
                segment_id=plan.segment_id,
                launch_claimed_at=utcnow(),
                launch_claimed_by=self.via,
                launch_error=None,
                updated_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        )
        return plan

    def _resume(
        self,
        s: Session,
        parent: OrchestrationRun,
        step: OrchestrationStep,
        children: Sequence[OrchestrationRun],
    ) -> Advance:
        output = {"children": [_summary(c) for c in children]}
        StepsRepository(s).transition(
            parent.id, step.step_id, "completed", output=self.store.mask(output)
        )
        try:
            RunsRepository(s).transition(parent.id, "running")
        except IllegalTransition:
            return Advance()
        plan = self._claim(s, parent, has_children=True)
        _event(
            s,
            parent,
            "children.completed",
            {
                "step_id": step.step_id,
                "statuses": [c.status for c in children],
                "segment": plan.segment_id,
                "by": self.via,
            },
        )
        return Advance(launch=[plan])

    def _fail_step(
        self,
        s: Session,
        parent: OrchestrationRun,
        step: OrchestrationStep,
        failed: OrchestrationRun,
        children: Sequence[OrchestrationRun],
    ) -> Advance:
        cause = (failed.error or {}).get("message") or failed.status
        error = {
            "message": f"child run {failed.id} ({failed.orchestration}, index "
            f"{failed.parent_step_index}) {failed.status}: {cause}",
            "type": "ChildFailed",
            "child_run_id": str(failed.id),
        }
        error = self.store.mask(error)
        StepsRepository(s).transition(parent.id, step.step_id, "failed", error=error)
        parent = RunsRepository(s).transition(parent.id, "failed", error=error, segment_id=None)
        _event(s, parent, "step.failed", {"step_id": step.step_id, "will_retry": False, **error})
        _event(s, parent, "run.failed", error)
        plan_compensation(s, parent, "failed")
        advance = Advance(ended=parent.id if parent.parent_run_id else None)
        advance.settle.append((parent.id, "failed", parent.last_dagster_run_id, error["message"]))
        reason = f"a sibling failed: {error['message']}"
        for child in children:
            if child.status not in TERMINAL_RUN_STATUSES:
                advance.settle.extend(abort_tree(s, child.id, reason, include_self=True))
        return advance

    # claims that did not start -------------------------------------------------------------

    def launch_failed(self, run_id: uuid.UUID, *, segment_id: str, reason: str) -> None:
        """The claimed segment did not start: hand the claim back with why (the sensor takes
        it over at its next tick)."""
        with self.store.session() as s:
            result = s.execute(
                update(OrchestrationRun)
                .where(OrchestrationRun.id == run_id, OrchestrationRun.segment_id == segment_id)
                .values(launch_claimed_at=None, launch_error=self.store.mask(reason))
                .execution_options(synchronize_session=False)
            )
            if result.rowcount:  # type: ignore[attr-defined]
                _event(
                    s, _get(s, run_id), "segment.launch_failed", {"reason": reason, "by": self.via}
                )

    def unstarted_claims(self, limit: int = 100) -> list[OrchestrationRun]:
        """Runs whose claimed segment has not started (its start op clears the claim)."""
        with self.store.session() as s:
            return list(
                s.scalars(
                    select(OrchestrationRun)
                    .where(OrchestrationRun.launch_claimed_by.is_not(None))
                    .where(OrchestrationRun.status.in_(("pending", "running")))
                    .order_by(OrchestrationRun.updated_at)
                    .limit(limit)
                )
            )

    def waiting_parents(self, limit: int = 100) -> list[uuid.UUID]:
        with self.store.session() as s:
            return list(
                s.scalars(
                    select(OrchestrationRun.id)
                    .where(OrchestrationRun.status == "awaiting_children")
                    .order_by(OrchestrationRun.updated_at)
                    .limit(limit)
                )
            )

    def reclaim(self, run_id: uuid.UUID, *, lease_seconds: float) -> segments.SegmentPlan | None:
        """The sensor's plan for a claim that has not started: its own claim as it is (same
        segment and run_key), another's once handed back or past its lease (a new segment)."""
        with self.store.session() as s:
            run = RunsRepository(s).get(run_id)
            if run is None or run.launch_claimed_by is None or run.segment_id is None:
                return None
            has_children = run.status == "running" and _has_children(s, run.id)
            if run.launch_claimed_by == SENSOR and run.launch_claimed_at is not None:
                return _plan(
                    s, run, via=SENSOR, segment_id=run.segment_id, has_children=has_children
                )
            claimed = run.launch_claimed_at
            if claimed is not None and claimed.tzinfo is None:  # SQLite keeps naive UTC
                claimed = claimed.replace(tzinfo=UTC)
            if claimed is not None and claimed > utcnow() - timedelta(seconds=lease_seconds):
                return None  # a live process may still be launching it
            plan = _plan(s, run, via=SENSOR, has_children=has_children)
            guard = OrchestrationRun.segment_id == run.segment_id
            result = s.execute(
                update(OrchestrationRun)
                .where(OrchestrationRun.id == run.id, guard)
                .values(
                    segment_id=plan.segment_id,
                    launch_claimed_at=utcnow(),
                    launch_claimed_by=SENSOR,
                    updated_at=utcnow(),
                )
                .execution_options(synchronize_session=False)
            )
            return plan if result.rowcount else None  # type: ignore[attr-defined]

    def started(self, run_id: uuid.UUID, *, dagster_run_id: str) -> None:
        """The claimed segment exists in Dagster: the claim is done."""
        with self.store.session() as s:
            s.execute(
                update(OrchestrationRun)
                .where(OrchestrationRun.id == run_id)
                .values(launch_claimed_at=None, launch_claimed_by=None, launch_error=None)
                .execution_options(synchronize_session=False)
            )


# aborting a tree ----------------------------------------------------------------------------


def abort_tree(
    s: Session, run_id: uuid.UUID, reason: str, *, include_self: bool = False
) -> list[tuple[uuid.UUID, str, str | None, str]]:
    """Abort every run below ``run_id`` (and it, with ``include_self``) that has not ended:
    approvals cancelled, waiting steps closed. Returns what to settle in Dagster."""
    ids = [run_id] if include_self else []
    level = [run_id]
    while level:
        level = list(
            s.scalars(select(OrchestrationRun.id).where(OrchestrationRun.parent_run_id.in_(level)))
        )
        ids.extend(level)
    settle = []
    runs = RunsRepository(s)
    for current in ids:
        run = runs.get(current, include_deleted=True)
        if run is None or run.status in TERMINAL_RUN_STATUSES:
            continue
        run = runs.transition(current, "aborted", error={"message": reason}, segment_id=None)
        cancel_open(s, run, reason)
        close_waiting_steps(s, current, reason)
        StepsRepository(s).cancel_running(current, error={"message": reason, "type": "Aborted"})
        _event(s, run, "run.aborted", {"reason": reason, "by": "parent"})
        plan_compensation(s, run, "aborted")  # the compensation sensor launches it
        settle.append((run.id, "aborted", run.last_dagster_run_id, reason))
    return settle


def close_waiting_steps(s: Session, run_id: uuid.UUID, reason: str) -> None:
    """Steps waiting (for a person or for children) end with the run: failed, as aborted."""
    steps = StepsRepository(s)
    for step in steps.list(run_id):
        if step.status == "waiting":
            steps.transition(
                run_id, step.step_id, "failed", error={"message": reason, "type": "Aborted"}
            )


# helpers ------------------------------------------------------------------------------------


def _lock(s: Session, run_id: uuid.UUID) -> None:
    """Take the parent's row first: an UPDATE locks it on Postgres and takes SQLite's write
    lock, so concurrent ends of its children are serialized from the first statement."""
    s.execute(
        update(OrchestrationRun)
        .where(OrchestrationRun.id == run_id)
        .values(updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def _get(s: Session, run_id: uuid.UUID) -> OrchestrationRun:
    run = RunsRepository(s).get(run_id, include_deleted=True)
    if run is None:
        raise ChildError(f"no orchestration run {run_id}")
    return run


def _definition(s: Session, organization: str, request: ChildRequest) -> Any:
    repo = DefinitionsRepository(s)
    if request.version is None:
        found = repo.latest(organization, request.orchestration)
    else:
        found = repo.get(organization, request.orchestration, request.version)
    if found is None:
        which = f" v{request.version}" if request.version is not None else ""
        raise ChildError(f"orchestration '{request.orchestration}'{which} is not stored")
    return found


def _depth(s: Session, run: OrchestrationRun) -> int:
    """Levels above ``run`` (0 for a root)."""
    depth, current = 0, run.parent_run_id
    while current is not None:
        depth += 1
        current = s.scalar(
            select(OrchestrationRun.parent_run_id).where(OrchestrationRun.id == current)
        )
    return depth


def _step_input(request: ChildRequest, values: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """What the step row keeps: the policy the later changes read, and each child's inputs."""
    return {
        "orchestration": request.orchestration,
        "version": request.version,
        "max_parallel": request.max_parallel,
        "on_child_failure": request.on_child_failure,
        "children": list(values),
    }


def _waiting_step(s: Session, parent_id: uuid.UUID) -> OrchestrationStep | None:
    return s.scalar(
        select(OrchestrationStep).where(
            OrchestrationStep.run_id == parent_id,
            OrchestrationStep.status == "waiting",
            OrchestrationStep.kind == "orchestration",
        )
    )


def _children(
    s: Session, parent_id: uuid.UUID, step: OrchestrationStep
) -> Sequence[OrchestrationRun]:
    """The children of the step's current attempt, in ``for_each`` order."""
    return s.scalars(
        select(OrchestrationRun)
        .where(
            OrchestrationRun.parent_run_id == parent_id,
            OrchestrationRun.parent_step_id == step.step_id,
            OrchestrationRun.parent_step_attempt == step.attempt,
        )
        .order_by(OrchestrationRun.parent_step_index)
        .execution_options(populate_existing=True)
    ).all()


def _has_children(s: Session, run_id: uuid.UUID) -> bool:
    return (
        s.scalar(select(OrchestrationRun.id).where(OrchestrationRun.parent_run_id == run_id))
        is not None
    )


def _summary(child: OrchestrationRun) -> dict[str, Any]:
    return {
        "run_id": str(child.id),
        "status": child.status,
        "outputs": child.outputs if child.status == "completed" else None,
        "error": child.error if child.status != "completed" else None,
    }


def _plan(
    s: Session,
    run: OrchestrationRun,
    *,
    via: str,
    segment_id: str | None = None,
    has_children: bool = False,
) -> segments.SegmentPlan:
    newest = DefinitionsRepository(s).latest(run.organization, run.orchestration)
    job = segments.job_for(run.orchestration, run.version, newest.version if newest else None)
    tags = {
        segments.LAUNCHED_BY_TAG: via,
        **segments.lineage_tags(run, has_children=has_children),
    }
    if run.created_by:
        tags[segments.USER_TAG] = run.created_by
    plan = segments.plan(run.id, job=job, inputs=dict(run.inputs), tags=tags, segment_id=segment_id)
    return segments.plan(
        run.id,
        job=job,
        inputs=dict(run.inputs),
        tags=tags,
        segment_id=plan.segment_id,
        run_key=f"baton-run-{run.id}-{plan.segment_id}",
    )


def _record_ends(
    s: Session, parent: OrchestrationRun, step_id: str, children: Sequence[OrchestrationRun]
) -> None:
    """One ``child.ended`` per ended child, whoever saw the end first (the child's own report
    or the sensor's tick); the parent row is locked, so two callers cannot both record one."""
    ended = [c for c in children if c.status in TERMINAL_RUN_STATUSES]
    if not ended:
        return
    recorded = s.scalars(
        select(OrchestrationEvent.payload).where(
            OrchestrationEvent.run_id == parent.id, OrchestrationEvent.type == "child.ended"
        )
    )
    seen = {str(payload.get("child_run_id")) for payload in recorded}
    for child in ended:
        if str(child.id) not in seen:
            payload = {"step_id": step_id, "child_run_id": str(child.id), "status": child.status}
            _event(s, parent, "child.ended", payload)


def _event(s: Session, run: OrchestrationRun, type_: str, payload: dict[str, Any]) -> None:
    EventsRepository(s).append(
        organization=run.organization, type=type_, run_id=run.id, payload=payload
    )


__all__ = ["Advance", "ChildError", "ChildRequest", "Children", "abort_tree"]
