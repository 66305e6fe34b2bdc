"""The run lifecycle: every change to a run's course, and the segment launch it needs.

The CLI, the API, the approvals page and the sensors translate and call; the state changes
are here (each one guarded transaction with its event, in the store and the approvals
service) and the segments come from ``baton.segments``. Whoever wins a guarded change is the
only one that launches, and the launch happens at once, from the process that made the
change (the fast path); the approval sensor is the safety net for a launcher that died or
failed between its claim and its launch.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from baton import segments
from baton.approvals import Approvals, Claim, cancel_open
from baton.children import Advance, Children, ChildRequest, abort_tree, close_waiting_steps
from baton.db.models import HumanApproval, OrchestrationRun
from baton.state import TERMINAL_RUN_STATUSES, IllegalTransition
from baton.store.definitions import DefinitionsRepository
from baton.store.events import EventsRepository
from baton.store.runs import RunsRepository
from baton.store.service import RunStore
from baton.store.steps import StepsRepository

log = logging.getLogger(__name__)
PAST = {"retry": "retried", "skip": "skipped"}


class Launcher(Protocol):
    """Dagster as the lifecycle needs it (``baton.launch.SegmentLauncher``, the API's gateway)."""

    def launch(self, segment: segments.SegmentPlan) -> str:
        """Start a segment; returns its Dagster run id."""
        ...

    def settle(
        self, run_id: uuid.UUID, status: str, *, last_dagster_run_id: str | None, reason: str
    ) -> None:
        """Show an ended run's true status on its segments (``baton.dagster_status``)."""
        ...


class LifecycleError(Exception):
    """A change that cannot be made now: ``code`` is not_found or conflict."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Prepared:
    """A retry or skip whose guarded change is made; its segment is still to launch."""

    segment: segments.SegmentPlan
    step_id: str
    action: str


@dataclass(frozen=True)
class Launched:
    """A segment that was asked for: its Dagster run, or why it did not start."""

    run_id: uuid.UUID
    dagster_run_id: str | None = None
    error: str | None = None


class Lifecycle:
    """Run lifecycle operations on one store, launching through ``launcher`` (if any).

    ``via`` names the caller in tags and events (cli, api, page, sensor).
    """

    def __init__(self, store: RunStore, launcher: Launcher | None, *, via: str) -> None:
        self.store = store
        self.launcher = launcher
        self.via = via

    # launching a new run ------------------------------------------------------------------

    def start(
        self,
        *,
        organization: str,
        slug: str,
        version: int,
        inputs: dict[str, Any],
        user: str,
    ) -> uuid.UUID:
        """Record a new run; ``launch_new`` starts it (split so an API can answer first)."""
        return self.store.create_run(
            organization=organization,
            slug=slug,
            version=version,
            inputs=inputs,
            created_by=user,
        )

    def launch_new(self, run_id: uuid.UUID, *, user: str) -> Launched:
        """Start the first segment of a pending run; a failed start fails the run.

        Raises:
            LifecycleError: the run already has a segment (launched twice).
        """
        segment = self._plan(run_id, user=user)
        with self.store.session() as s:
            if not RunsRepository(s).swap_segment(run_id, None, segment.segment_id):
                raise LifecycleError("conflict", f"run {run_id} was launched already")
        return self._launch(segment, fail_run=True)

    # approvals ------------------------------------------------------------------------------

    def decide(
        self,
        approval_id: uuid.UUID,
        *,
        user: str,
        decision: str,
        modifications: dict[str, Any] | None = None,
        comment: str | None = None,
    ) -> HumanApproval:
        """Record a decision (``Approvals.decide``); raises its ``ApprovalError``.

        Call ``resume`` afterwards when the approval is decided (at once, or in the
        background once the caller has answered).
        """
        return Approvals(self.store).decide(
            approval_id,
            user=user,
            decision=decision,
            modifications=modifications,
            comment=comment,
        )

    def resume(self, approval_id: uuid.UUID) -> Launched | None:
        """The fast path: claim a decided approval and launch its run's next segment now.

        None when another caller (the sensor, a second process) claimed it first or the
        decision launches nothing (abort). A failed launch releases the claim with its reason,
        so the approval shows why it waits and the sensor takes it over at its next tick.
        """
        approvals = Approvals(self.store)
        claim = approvals.claim(approval_id, by=self.via)
        if claim is None:
            return None
        if not claim.launch:  # an abort decision: nothing to launch, the run has ended
            self._settle(claim.run_id, claim.last_dagster_run_id, "aborted", "aborted by decision")
            self.child_ended(claim.run_id)
            return None
        return self.launch_claim(claim)

    def launch_claim(self, claim: Claim) -> Launched:
        """Launch the segment of a claim this process holds."""
        approvals = Approvals(self.store)
        outcome = self._launch(claim.segment(self.via), fail_run=False)
        if outcome.dagster_run_id is not None:
            approvals.launched(
                claim.approval_id, dagster_run_id=outcome.dagster_run_id, by=self.via
            )
        else:
            approvals.launch_failed(
                claim.approval_id, reason=outcome.error or "not launched", release=True
            )
        return outcome

    # operator actions -------------------------------------------------------------------

    def abort(
        self, run_id: uuid.UUID, *, by: str, organization: str | None = None
    ) -> OrchestrationRun:
        """Abort a run that has not ended: open approvals are cancelled, and its active
        segment is cleared so a segment still starting does no work.

        Raises:
            LifecycleError: no such run (in ``organization``), or it already ended.
        """
        reason = f"aborted by {by} through the {self.via}"
        with self.store.session() as s:
            RunsRepository(s).lock(run_id)
            run = _run(s, run_id, organization)
            if run.status in TERMINAL_RUN_STATUSES:
                raise LifecycleError("conflict", f"run {run_id} already ended ({run.status})")
            try:
                run = RunsRepository(s).transition(
                    run_id, "aborted", error={"message": reason}, segment_id=None
                )
            except IllegalTransition as exc:
                raise LifecycleError("conflict", str(exc)) from exc
            cancelled = cancel_open(s, run, reason)
            close_waiting_steps(s, run_id, reason)
            below = abort_tree(s, run_id, f"{reason} (a run above it)")
            EventsRepository(s).append(
                organization=run.organization,
                type="run.aborted",
                run_id=run_id,
                payload={
                    "reason": reason,
                    "by": by,
                    "cancelled_approvals": [str(a) for a in cancelled],
                },
            )
        # After the commit: a segment still running is canceled, an ended one shows Canceled.
        self._settle(run.id, run.last_dagster_run_id, "aborted", reason)
        for child_id, status, last, why in below:
            self._settle(child_id, last, status, why)
        if run.parent_run_id is not None:
            self.child_ended(run.id)
        return run

    # child runs ---------------------------------------------------------------------------

    def start_children(self, request: ChildRequest, *, max_depth: int) -> Advance:
        """Create a step's children and launch the first ``max_parallel`` of them.

        Raises:
            ChildError: the children cannot be created (the step's problem, not the run's).
        """
        advance = Children(self.store, via=self.via).spawn(request, max_depth=max_depth)
        self._carry_out(advance)
        return advance

    def child_ended(self, child_id: uuid.UUID) -> None:
        """The fast path after a child's end: launch the next children or resume the parent
        (exactly one caller wins each), and pass a parent's own end up the tree."""
        current: uuid.UUID | None = child_id
        while current is not None:
            advance = Children(self.store, via=self.via).child_ended(current)
            self._carry_out(advance)
            current = advance.ended

    def _carry_out(self, advance: Advance) -> None:
        for run_id, status, last, reason in advance.settle:
            self._settle(run_id, last, status, reason)
        for plan in advance.launch:
            launched = self._launch(plan, fail_run=False)
            if launched.dagster_run_id is None:
                Children(self.store, via=self.via).launch_failed(
                    plan.run_id, segment_id=plan.segment_id, reason=launched.error or "not launched"
                )

    def retry_step(
        self, run_id: uuid.UUID, step_id: str, *, by: str, organization: str | None = None
    ) -> Launched:
        """Run a failed step of a failed run again in a new segment (finished steps are reused).

        Raises:
            LifecycleError: no such run or step, or the run or step is not failed (also when a
                concurrent retry or skip won).
        """
        return self.launch_prepared(
            self.prepare_retry(run_id, step_id, by=by, organization=organization)
        )

    def skip_step(
        self, run_id: uuid.UUID, step_id: str, *, by: str, organization: str | None = None
    ) -> Launched:
        """Mark a failed step of a failed run skipped (output null) and continue the run."""
        return self.launch_prepared(
            self.prepare_skip(run_id, step_id, by=by, organization=organization)
        )

    def prepare_retry(
        self, run_id: uuid.UUID, step_id: str, *, by: str, organization: str | None = None
    ) -> Prepared:
        """The guarded half of ``retry_step``: the run is running again, the step pending;
        returns the segment to launch (``launch_prepared``)."""
        return self._step_action(run_id, step_id, "retry", by, organization)

    def prepare_skip(
        self, run_id: uuid.UUID, step_id: str, *, by: str, organization: str | None = None
    ) -> Prepared:
        """The guarded half of ``skip_step``."""
        return self._step_action(run_id, step_id, "skip", by, organization)

    def launch_prepared(self, prepared: Prepared) -> Launched:
        """Launch the segment of a prepared retry or skip.

        A failed start fails the run again with the reason and puts the step back to failed,
        so the operator can retry or skip it once the cause is fixed.
        """
        launched = self._launch(prepared.segment, fail_run=False)
        if launched.dagster_run_id is None:
            self._undo_step_action(prepared, launched.error or "the segment did not start")
        return launched

    # helpers ----------------------------------------------------------------------------

    def _step_action(
        self,
        run_id: uuid.UUID,
        step_id: str,
        action: str,
        by: str,
        organization: str | None,
    ) -> Prepared:
        segment = self._plan(run_id, user=by)
        with self.store.session() as s:
            run = _run(s, run_id, organization)
            steps = StepsRepository(s)
            step = steps.get(run_id, step_id)
            if step is None:
                raise LifecycleError("not_found", f"step '{step_id}' in run {run_id}")
            if run.status != "failed" or step.status != "failed":
                raise LifecycleError(
                    "conflict",
                    f"only a failed step of a failed run can be {PAST[action]}; the run is "
                    f"{run.status} and step '{step_id}' is {step.status}",
                )
            try:  # the guard: of two racing actions, one moves the run out of 'failed'
                RunsRepository(s).transition(
                    run_id, "running", error=None, segment_id=segment.segment_id
                )
            except IllegalTransition as exc:
                raise LifecycleError(
                    "conflict",
                    f"run {run_id} is no longer failed (another retry, skip or re-execution "
                    "started it just now); nothing was launched",
                ) from exc
            if action == "retry":
                steps.transition(run_id, step_id, "pending", error=None)
            else:
                reason = f"skipped by {by} through the {self.via}"
                steps.transition(run_id, step_id, "skipped", output=None, error={"reason": reason})
            EventsRepository(s).append(
                organization=run.organization,
                type="step.retry_requested" if action == "retry" else "step.skipped",
                run_id=run_id,
                payload={"step_id": step_id, "by": by, "via": self.via},
            )
        return Prepared(segment, step_id, action)

    def _undo_step_action(self, prepared: Prepared, message: str) -> None:
        run_id = prepared.segment.run_id
        error = {"message": f"could not continue the run: {message}", "type": "LaunchError"}
        with self.store.session() as s:
            steps = StepsRepository(s)
            if prepared.action == "skip":
                steps.transition(run_id, prepared.step_id, "pending", output=None)
            steps.transition(run_id, prepared.step_id, "failed", error=error)
            run = RunsRepository(s).transition(run_id, "failed", error=error, segment_id=None)
            EventsRepository(s).append(
                organization=run.organization, type="run.failed", run_id=run_id, payload=error
            )

    def _plan(self, run_id: uuid.UUID, *, user: str) -> segments.SegmentPlan:
        with self.store.session() as s:
            run = RunsRepository(s).get(run_id)
            if run is None:
                raise LifecycleError("not_found", f"orchestration run {run_id}")
            newest = DefinitionsRepository(s).latest(run.organization, run.orchestration)
            job = segments.job_for(
                run.orchestration, run.version, newest.version if newest else None
            )
            inputs = dict(run.inputs)
            lineage = segments.lineage_tags(run)
        tags = {**lineage, segments.LAUNCHED_BY_TAG: self.via, segments.USER_TAG: user}
        return segments.plan(run_id, job=job, inputs=inputs, tags=tags)

    def _settle(
        self, run_id: uuid.UUID, last_dagster_run_id: str | None, status: str, reason: str
    ) -> None:
        if self.launcher is None:
            return  # baton_segment_status_sensor settles it within its interval
        try:
            self.launcher.settle(
                run_id, status, last_dagster_run_id=last_dagster_run_id, reason=reason
            )
        except Exception as exc:  # the run ended in Baton either way; the sensor retries
            log.warning("could not settle Dagster runs of %s: %s", run_id, type(exc).__name__)

    def _launch(self, segment: segments.SegmentPlan, *, fail_run: bool) -> Launched:
        if self.launcher is None:
            return Launched(segment.run_id, error="no launcher in this process")
        try:
            dagster_run_id = self.launcher.launch(segment)
        except Exception as exc:  # any refusal is the run's news, never a traceback
            message = self.store.mask(str(exc))
            log.warning("launching a segment of %s failed: %s", segment.run_id, message)
            if fail_run:
                self.store.fail_run(
                    segment.run_id, {"message": message, "type": type(exc).__name__}
                )
            return Launched(segment.run_id, error=message)
        return Launched(segment.run_id, dagster_run_id=dagster_run_id)


def _run(s: Any, run_id: uuid.UUID, organization: str | None) -> OrchestrationRun:
    run = RunsRepository(s).get(run_id)
    if run is None or (organization is not None and run.organization != organization):
        raise LifecycleError("not_found", f"orchestration run {run_id}")
    return run
