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
from dataclasses import dataclass, replace
from typing import Any, Protocol

from baton import segments
from baton.approvals import Approvals, Claim, cancel_open
from baton.children import Advance, Children, ChildRequest, abort_tree, close_waiting_steps
from baton.compensation import Compensations, NotCompensable
from baton.compensation import plan as plan_compensation
from baton.db.models import HumanApproval, OrchestrationRun, OrchestrationStep
from baton.edge import input_limits
from baton.interventions import (
    abort_refusal,
    compensation_refusal,
    continues_run,
    retry_refusal,
    skip_refusal,
    step_state,
)
from baton.settings import get_settings
from baton.state import IllegalTransition
from baton.store.audit import ActionRecord, AuditRepository
from baton.store.definitions import DefinitionsRepository
from baton.store.events import EventsRepository
from baton.store.runs import RunsRepository
from baton.store.service import RunStore
from baton.store.steps import StepsRepository
from baton.webhooks.claims import WebhookClaims, fast_segment
from baton.webhooks.inbox import Inbox, InboxItem
from baton.webhooks.triggering import Fired, evaluate, segment_plan, triggered_specs
from orchestration_defs.language.values import ValueProblem, check_value

log = logging.getLogger(__name__)


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
    """A change that cannot be made now: ``code`` is not_found, conflict or invalid (then
    ``field`` names the value refused)."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field


class Refused(LifecycleError):
    """An operator action the state does not allow (or whose value is invalid); the refusal
    is recorded in the audit log (``entry``) in a transaction of its own."""

    def __init__(
        self, entry: ActionRecord, message: str, code: str = "conflict", field: str | None = None
    ) -> None:
        super().__init__(code, message, field)
        self.entry = entry


@dataclass(frozen=True)
class Prepared:
    """A retry or skip whose guarded change is made; its segment is still to launch.

    ``launch`` is False for a pending step skipped ahead of time (the run's own segment
    reuses it when it gets there); ``new_call`` is False for an orphan retried without a new
    input (the step stays failed until its attempt starts, so the call keeps its key).
    """

    segment: segments.SegmentPlan
    step_id: str
    action: str
    audit_id: uuid.UUID | None = None
    launch: bool = True
    new_call: bool = True


@dataclass(frozen=True)
class StepRequest:
    """An operator's retry or skip: ``value`` is the new input (retry; None keeps the
    rendered one) or the step's output (skip; ``given`` says whether one was passed)."""

    run_id: uuid.UUID
    step_id: str
    action: str
    by: str
    organization: str | None = None
    reason: str | None = None
    value: Any = None
    given: bool = False


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

    def start_from_webhook(self, inbox_id: int) -> list[Launched]:
        """The fast path of a stored webhook: launch the first segment of each run its
        triggers fire, once, from this process (the webhook sensor is the safety net).

        A run the sensor created first is left to it. A failed launch hands the claim to the
        sensor at once, with its reason; a process that dies after claiming leaves it to the
        sensor after ``BATON_SENSORS__CLAIM_LEASE_SECONDS`` (``baton.webhooks.claims``).
        """
        inbox = Inbox(self.store.url)
        item = inbox.get(inbox_id)
        if item is None:
            return []
        evaluation = evaluate(item, triggered_specs(self.store))
        claims = WebhookClaims(self.store)
        launched: list[Launched] = []
        started: dict[str, str] = {}
        failed: dict[str, str] = {}
        for fired in evaluation.fired:
            if not claims.claim_fast(item, fired):
                continue  # the sensor (or a replay's process) has this run
            outcome = self._launch_fired(claims, item, fired)
            launched.append(outcome)
            if outcome.dagster_run_id is not None:
                started[fired.spec.slug] = outcome.dagster_run_id
            else:
                failed[fired.spec.slug] = outcome.error or "not launched"
        # The row is this process's to report when it launched every run (the sensor
        # reports the rest, and the webhooks that fired nothing).
        if launched and len(launched) == len(evaluation.fired):
            status = "pending" if failed else "processed"
            result: dict[str, Any] = {"run_keys": [], "notes": evaluation.notes}
            result["fast_path"] = {"by": self.via, "started": started, "failed": failed}
            if failed:
                result["waiting"] = [
                    f"{slug}: launch failed: {why}" for slug, why in failed.items()
                ]
            inbox.mark(item.id, status, result)
        return launched

    def _launch_fired(self, claims: WebhookClaims, item: InboxItem, fired: Fired) -> Launched:
        plan = segment_plan(
            self.store,
            item,
            fired,
            segment_id=fast_segment(fired.run_id),
            launched_by=self.via,
            keyed=False,
        )
        outcome = self._launch(plan, fail_run=False)
        if outcome.dagster_run_id is not None:
            claims.launched(item, fired, dagster_run_id=outcome.dagster_run_id, by=self.via)
        else:
            claims.release(item, fired, reason=outcome.error or "not launched", by=self.via)
        return outcome

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
        self,
        run_id: uuid.UUID,
        *,
        by: str,
        organization: str | None = None,
        reason: str | None = None,
    ) -> OrchestrationRun:
        """Abort a run that has not ended: open approvals are cancelled, running steps
        cancelled, waiting ones closed, its children aborted, and its active segment cleared
        so a segment still starting does no work; its Dagster runs are canceled after the
        commit. Recorded in the audit log (``reason``: the operator's why).

        Raises:
            LifecycleError: no such run (in ``organization``), or it already ended (refused).
        """
        why = self.store.mask(reason) if reason else None
        message = f"aborted by {by} through the {self.via}" + (f": {why}" if why else "")
        try:
            run, below = self._abort(run_id, by, organization, why, message)
        except Refused as exc:
            self._record_refusal(exc)
            raise
        # After the commit: a segment still running is canceled, an ended one shows Canceled.
        self._settle(run.id, run.last_dagster_run_id, "aborted", message)
        for child_id, status, last, child_why in below:
            self._settle(child_id, last, status, child_why)
        if run.parent_run_id is not None:
            self.child_ended(run.id)
        self.launch_compensation(run.id)
        return run

    def _abort(
        self,
        run_id: uuid.UUID,
        by: str,
        organization: str | None,
        why: str | None,
        message: str,
    ) -> tuple[OrchestrationRun, list[tuple[uuid.UUID, str, str | None, str]]]:
        with self.store.session() as s:
            RunsRepository(s).lock(run_id)
            run = _run(s, run_id, organization)
            entry = ActionRecord(
                run.organization, run_id, None, "abort", by, self.via, why, {}, run.status, None
            )
            refusal = abort_refusal(run.status, run_id)
            if refusal is not None:
                raise Refused(entry, refusal)
            try:
                run = RunsRepository(s).transition(
                    run_id, "aborted", error={"message": message}, segment_id=None
                )
            except IllegalTransition as exc:
                raise Refused(entry, str(exc)) from exc
            cancelled = cancel_open(s, run, message)
            close_waiting_steps(s, run_id, message)
            stopped = StepsRepository(s).cancel_running(
                run_id, error={"message": message, "type": "Aborted"}
            )
            below = abort_tree(s, run_id, f"{message} (a run above it)")
            # In the abort's transaction: planned once; launched after the commit.
            plan_compensation(s, run, "aborted")
            audit = AuditRepository(s).record(entry, outcome="accepted", message=message)
            EventsRepository(s).append(
                organization=run.organization,
                type="run.aborted",
                run_id=run_id,
                payload={
                    "reason": message,
                    "why": why,
                    "by": by,
                    "via": self.via,
                    "audit_id": str(audit.id),
                    "cancelled_approvals": [str(a) for a in cancelled],
                    "cancelled_steps": stopped,
                },
            )
        return run, below

    # compensation -------------------------------------------------------------------------

    def compensate(
        self,
        run_id: uuid.UUID,
        *,
        by: str,
        organization: str | None = None,
        reason: str | None = None,
    ) -> Launched:
        """An operator's compensation of a failed or aborted run's completed steps (a failed
        compensation: its failed ones again); launched from this process.

        Raises:
            LifecycleError: no such run (in ``organization``), or its state does not allow
                it (code conflict, the state named).
        """
        self.prepare_compensation(run_id, by=by, organization=organization, reason=reason)
        launched = self.launch_compensation(run_id)
        return launched or Launched(run_id, error="claimed by another process")

    def prepare_compensation(
        self,
        run_id: uuid.UUID,
        *,
        by: str,
        organization: str | None = None,
        reason: str | None = None,
    ) -> list[str]:
        """The guarded half of ``compensate``: the compensation pending (planned, or its
        failed steps reopened); returns the steps it undoes, in order."""
        with self.store.session() as s:
            _run(s, run_id, organization)
        try:
            return Compensations(self.store).request(
                run_id, by=by, via=self.via, reason=self.store.mask(reason) if reason else None
            )
        except NotCompensable as exc:
            raise LifecycleError("conflict", str(exc)) from exc

    def launch_compensation(self, run_id: uuid.UUID) -> Launched | None:
        """The fast path of a planned compensation: claim it and launch its segment from
        this process (None: nothing pending, or another caller claimed it). A failed launch
        hands it to the compensation sensor with the reason."""
        if self.launcher is None:
            return None  # the compensation sensor claims it at its next tick
        compensations = Compensations(self.store)
        segment = compensations.claim(run_id, by=self.via)
        if segment is None:
            return None
        launched = self._launch(segment, fail_run=False)
        if launched.dagster_run_id is not None:
            compensations.launched(segment, dagster_run_id=launched.dagster_run_id, by=self.via)
        else:
            compensations.release(segment, reason=launched.error or "not launched")
        return launched

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
        self,
        run_id: uuid.UUID,
        step_id: str,
        *,
        by: str,
        organization: str | None = None,
        input: dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> Launched:
        """Run a failed or orphaned step of a failed run again in a new segment (finished
        steps are reused), with ``input`` replacing its rendered input if given.

        Raises:
            LifecycleError: no such run or step, the state does not allow it (also when a
                concurrent retry or skip won), or ``input`` is invalid (code ``invalid``).
        """
        return self.launch_prepared(
            self.prepare_retry(
                run_id, step_id, by=by, organization=organization, input=input, reason=reason
            )
        )

    def skip_step(
        self,
        run_id: uuid.UUID,
        step_id: str,
        *,
        by: str,
        organization: str | None = None,
        output: Any = None,
        reason: str | None = None,
        given: bool | None = None,
    ) -> Launched:
        """Skip a failed or orphaned step of a failed run (the run continues) or a pending
        step of a run under way (its segment reuses it), with ``output`` as its output."""
        return self.launch_prepared(
            self.prepare_skip(
                run_id,
                step_id,
                by=by,
                organization=organization,
                output=output,
                reason=reason,
                given=given,
            )
        )

    def prepare_retry(
        self,
        run_id: uuid.UUID,
        step_id: str,
        *,
        by: str,
        organization: str | None = None,
        input: dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> Prepared:
        """The guarded half of ``retry_step``: the run is running again (its new segment
        the active one), the step pending (a new logical call) or, for an orphan retried
        without a new input, still failed so its call keeps its idempotency key; returns the
        segment to launch (``launch_prepared``)."""
        request = StepRequest(
            run_id, step_id, "retry", by, organization, reason, input, input is not None
        )
        return self._step_action(request)

    def prepare_skip(
        self,
        run_id: uuid.UUID,
        step_id: str,
        *,
        by: str,
        organization: str | None = None,
        output: Any = None,
        reason: str | None = None,
        given: bool | None = None,
    ) -> Prepared:
        """The guarded half of ``skip_step`` (``given``: an output was passed, default
        whether ``output`` is not None; downstream steps then see it as their input)."""
        passed = output is not None if given is None else given
        request = StepRequest(run_id, step_id, "skip", by, organization, reason, output, passed)
        return self._step_action(request)

    def launch_prepared(self, prepared: Prepared) -> Launched:
        """Launch the segment of a prepared retry or skip (nothing for a skip ahead).

        A failed start fails the run again with the reason and puts the step back to failed,
        so the operator can retry or skip it once the cause is fixed.
        """
        if not prepared.launch:
            return Launched(prepared.segment.run_id)
        launched = self._launch(prepared.segment, fail_run=False)
        if launched.dagster_run_id is None:
            self._undo_step_action(prepared, launched.error or "the segment did not start")
        return launched

    def plan_again(self, run_id: uuid.UUID, segment_id: str, *, user: str) -> segments.SegmentPlan:
        """The plan of a segment already made the run's active one but lost before Dagster
        stored its run: the same segment id, so asking for it again is the same segment."""
        return self._plan(run_id, user=user, segment_id=segment_id)

    # helpers ----------------------------------------------------------------------------

    def _step_action(self, request: StepRequest) -> Prepared:
        segment = self._plan(request.run_id, user=request.by)
        try:
            return self._guarded_step_action(request, segment)
        except Refused as exc:
            self._record_refusal(exc)
            raise

    def _guarded_step_action(self, request: StepRequest, segment: segments.SegmentPlan) -> Prepared:
        run_id, step_id = request.run_id, request.step_id
        with self.store.session() as s:
            runs = RunsRepository(s)
            runs.lock(run_id)  # of two racing actions the second sees the first's state
            run = _run(s, run_id, request.organization)
            steps = StepsRepository(s)
            step = steps.get(run_id, step_id)
            entry = self._entry(run, request, step)
            if step is None:
                raise Refused(entry, f"step '{step_id}' in run {run_id}", code="not_found")
            state = step_state(step.status, step.error)
            rule = retry_refusal if request.action == "retry" else skip_refusal
            refusal = compensation_refusal(run.id, run.compensation) or rule(
                run.status, state, step_id
            )
            if refusal is not None:
                raise Refused(entry, refusal)
            value = self._checked_value(request, entry)
            entry = replace(entry, details=self._details(request, value))
            audit_id = uuid.uuid4()
            launch = request.action == "retry" or continues_run(run.status, state)
            if launch:
                _reopen(runs, entry, segment.segment_id)
            if request.action == "retry":
                new_call = self._retry(steps, request, state, value)
                note = "a new logical call" if new_call else "the same call (key kept)"
                message = f"retried as {note}; the run continues in a new segment"
            else:
                new_call = True
                self._skip(steps, request, value, audit_id)
                message = (
                    "skipped; the run continues in a new segment"
                    if launch
                    else "skipped ahead; the run reuses the given output when it reaches it"
                )
            AuditRepository(s).record(entry, outcome="accepted", message=message, id=audit_id)
            payload: dict[str, Any] = {
                "step_id": step_id,
                "by": request.by,
                "via": self.via,
                "reason": entry.reason,
                "audit_id": str(audit_id),
            }
            if request.action == "retry":
                # The segment named, so a launch lost after this commit can be asked again.
                payload.update(
                    new_input=request.given, new_call=new_call, segment_id=segment.segment_id
                )
            else:
                payload.update(output_given=request.given, ahead=not launch)
            EventsRepository(s).append(
                organization=run.organization,
                type="step.retry_requested" if request.action == "retry" else "step.skipped",
                run_id=run_id,
                payload=payload,
            )
        return Prepared(segment, step_id, request.action, audit_id, launch, new_call)

    def _entry(
        self, run: OrchestrationRun, request: StepRequest, step: OrchestrationStep | None
    ) -> ActionRecord:
        return ActionRecord(
            organization=run.organization,
            run_id=run.id,
            step_id=request.step_id,
            action=request.action,
            by=request.by,
            via=self.via,
            reason=self.store.mask(request.reason) if request.reason else None,
            details={},
            run_status=run.status,
            step_status=step_state(step.status, step.error) if step is not None else None,
        )

    def _checked_value(self, request: StepRequest, entry: ActionRecord) -> Any:
        """The new input or given output within the edge limits (a retry's input is an
        object: it replaces the rendered input, which the agent reads as one)."""
        if not request.given:
            return None
        field = "input" if request.action == "retry" else "output"
        if request.action == "retry" and not isinstance(request.value, dict):
            raise Refused(
                entry,
                f"{field}: expected a JSON object (it replaces the step's rendered input), "
                f"got {type(request.value).__name__}",
                code="invalid",
                field=field,
            )
        try:
            return check_value(request.value, field, input_limits(get_settings()))
        except ValueProblem as exc:
            raise Refused(entry, str(exc), code="invalid", field=exc.field) from exc

    def _details(self, request: StepRequest, value: Any) -> dict[str, Any]:
        if not request.given:
            return {}
        field = "input" if request.action == "retry" else "output"
        return {field: self.store.mask(value)}

    def _retry(self, steps: StepsRepository, request: StepRequest, state: str, value: Any) -> bool:
        """The step's side of a retry; returns whether it is a new logical call.

        An orphan retried as it was stays failed: its call may have reached the agent, and a
        start from failed presents the same call (and key) again. Anything else goes back
        to pending, so its next start is a new call; a new input replaces the rendered one.
        """
        # The retry takes (or, an operator's, overtakes) any the reaper had scheduled for it.
        steps.take_retry(request.run_id, request.step_id)
        if state == "orphaned" and not request.given:
            return False
        steps.transition(request.run_id, request.step_id, "pending", error=None)
        if request.given:
            steps.set_input_replacement(request.run_id, request.step_id, self.store.mask(value))
        return True

    def _skip(
        self, steps: StepsRepository, request: StepRequest, value: Any, audit_id: uuid.UUID
    ) -> None:
        reason = f"skipped by {request.by} through the {self.via}"
        steps.transition(
            request.run_id,
            request.step_id,
            "skipped",
            output=self.store.mask(value),
            # given_output: downstream steps take it as a result, not as a skip to follow.
            error={"reason": reason, "given_output": request.given, "audit_id": str(audit_id)},
        )

    def _record_refusal(self, refused: Refused) -> None:
        """The refusal in the audit log, in its own transaction (the change's rolled back)."""
        try:
            with self.store.session() as s:
                AuditRepository(s).record(refused.entry, outcome="refused", message=str(refused))
        except Exception as exc:  # the refusal is the answer either way; say what was lost
            log.warning(
                "could not record the refused %s of %s: %s",
                refused.entry.action,
                refused.entry.run_id,
                type(exc).__name__,
            )

    def _undo_step_action(self, prepared: Prepared, message: str) -> None:
        run_id = prepared.segment.run_id
        error = {"message": f"could not continue the run: {message}", "type": "LaunchError"}
        with self.store.session() as s:
            steps = StepsRepository(s)
            if prepared.action == "skip":
                steps.transition(run_id, prepared.step_id, "pending", output=None)
            if prepared.new_call:  # a kept call never left failed
                steps.transition(run_id, prepared.step_id, "failed", error=error)
            run = RunsRepository(s).transition(run_id, "failed", error=error, segment_id=None)
            EventsRepository(s).append(
                organization=run.organization, type="run.failed", run_id=run_id, payload=error
            )
            # Failed with no retry pending now: compensated as any failure is (an orphan's
            # compensation waited for the policy retry that could not be launched).
            plan_compensation(s, run, "failed")

    def _plan(
        self, run_id: uuid.UUID, *, user: str, segment_id: str | None = None
    ) -> segments.SegmentPlan:
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
        return segments.plan(run_id, job=job, inputs=inputs, tags=tags, segment_id=segment_id)

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


def _reopen(runs: RunsRepository, entry: ActionRecord, segment_id: str) -> None:
    """The guard: of two racing actions (SQLite takes no row lock), one moves the run out of
    'failed'; the other is refused."""
    try:
        runs.transition(entry.run_id, "running", error=None, segment_id=segment_id)
    except IllegalTransition as exc:
        raise Refused(
            entry,
            f"run {entry.run_id} is no longer failed (another retry, skip or re-execution "
            "started it just now); nothing was launched",
        ) from exc


def _run(s: Any, run_id: uuid.UUID, organization: str | None) -> OrchestrationRun:
    run = RunsRepository(s).get(run_id)
    if run is None or (organization is not None and run.organization != organization):
        raise LifecycleError("not_found", f"orchestration run {run_id}")
    return run
