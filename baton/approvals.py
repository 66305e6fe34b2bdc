"""Approvals: requesting a human decision, deciding it, and claiming it to resume the run.

Every change is one transaction with its event. Deciding is recorded once (a second decision on
a decided approval is a conflict); claiming moves ``decided -> resuming`` with a guarded update,
and only the caller that wins launches the next segment.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from baton import segments
from baton.compensation import plan as plan_compensation
from baton.db.models import HumanApproval, OrchestrationRun, User, utcnow
from baton.state import TERMINAL_RUN_STATUSES, IllegalTransition
from baton.store.approvals import ApprovalsRepository
from baton.store.definitions import DefinitionsRepository
from baton.store.events import EventsRepository
from baton.store.runs import RunsRepository
from baton.store.service import RunStore
from baton.store.steps import StepsRepository
from baton.store.users import UsersRepository
from orchestration_defs.language.checkpoint import parse_duration
from orchestration_defs.language.graph import descendants
from orchestration_defs.language.models import OrchestrationSpec, matches_type

# Who claims a decision: the sensor's own claims are requested again at once (its run_key
# dedupes them); another process's claim is taken over only once its lease has passed.
SENSOR = "sensor"


class ApprovalError(Exception):
    """A decision that cannot be taken: ``code`` is not_found, conflict, forbidden or invalid."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field


@dataclass(frozen=True)
class Claim:
    """What the caller that claimed a decided approval must do next."""

    approval_id: uuid.UUID
    run_id: uuid.UUID
    orchestration: str
    decision: str
    launch: bool
    inputs: dict[str, Any]
    last_dagster_run_id: str | None
    version: int = 1
    job: str = ""
    attempt: int = 1
    decided_by: str | None = None
    # A child run's place in its tree (baton/parent_run_id, ...), on every segment of it.
    lineage: tuple[tuple[str, str], ...] = ()

    @property
    def segment_id(self) -> str:
        """The segment this claim launches: the same on a repeated request of one claim, new
        for each claim, so a late launch of an abandoned claim does no work."""
        return f"{self.approval_id.hex}-{self.attempt}"

    @property
    def run_key(self) -> str:
        base = f"baton-approval-{self.approval_id}"
        return base if self.attempt == 1 else f"{base}-{self.attempt}"

    def segment(self, launched_by: str) -> segments.SegmentPlan:
        """The next segment of the claimed run."""
        tags = {
            **dict(self.lineage),
            segments.APPROVAL_TAG: str(self.approval_id),
            segments.DECISION_TAG: self.decision,
            segments.LAUNCHED_BY_TAG: launched_by,
        }
        if self.decided_by:  # who caused this segment, as baton/user says for API launches
            tags[segments.USER_TAG] = self.decided_by
        if self.last_dagster_run_id:
            tags[segments.CONTINUES_TAG] = self.last_dagster_run_id
        return segments.SegmentPlan(
            run_id=self.run_id,
            job_name=self.job,
            run_config=segments.run_config(self.inputs),
            tags=tags,
            segment_id=self.segment_id,
            run_key=self.run_key,
        )


class Approvals:
    """Approval operations on one store."""

    def __init__(self, store: RunStore) -> None:
        self.store = store

    # requested by the checkpoint op ----------------------------------------------------

    def request(
        self,
        *,
        run_id: uuid.UUID,
        step_id: str,
        prompt: str,
        show: Any,
        policy: dict[str, Any],
        timeout: timedelta | None,
        dagster_run_id: str,
        previous_id: uuid.UUID | None = None,
    ) -> HumanApproval:
        """Store a pending approval, put the step waiting and the run awaiting approval."""
        with self.store.session() as s:
            RunsRepository(s).lock(run_id)
            run = _run(s, run_id)
            now = utcnow()
            approval = ApprovalsRepository(s).add(
                id=uuid.uuid4(),
                run_id=run_id,
                step_id=step_id,
                status="pending",
                organization=run.organization,
                prompt=self.store.mask(prompt),
                show=self.store.mask(show),
                policy=policy,
                requested_by=run.created_by,
                requested_at=now,
                expires_at=now + timeout if timeout else None,
                previous_approval_id=previous_id,
                dagster_run_id=dagster_run_id,
            )
            if previous_id is not None:
                ApprovalsRepository(s).transition(
                    previous_id, "resumed", resumed_dagster_run_id=dagster_run_id
                )
            StepsRepository(s).transition(run_id, step_id, "waiting")
            _await(s, run)
            _event(
                s,
                run,
                "checkpoint.requested",
                {
                    "approval_id": str(approval.id),
                    "step_id": step_id,
                    "prompt": approval.prompt,
                    "expires_at": approval.expires_at.isoformat() if approval.expires_at else None,
                    "previous_approval_id": str(previous_id) if previous_id else None,
                },
            )
            return approval

    def still_waiting(self, run_id: uuid.UUID) -> None:
        """A segment found the approval still pending: the run waits again."""
        with self.store.session() as s:
            _await(s, _run(s, run_id))

    def latest(self, run_id: uuid.UUID, step_id: str) -> HumanApproval | None:
        with self.store.session() as s:
            return ApprovalsRepository(s).latest_for_step(run_id, step_id)

    def complete_continue(
        self, approval: HumanApproval, output: dict[str, Any], dagster_run_id: str
    ) -> None:
        """The checkpoint step completes with the approved value; the approval is resumed."""
        with self.store.session() as s:
            RunsRepository(s).lock(approval.run_id)
            StepsRepository(s).transition(
                approval.run_id, approval.step_id, "completed", output=self.store.mask(output)
            )
            ApprovalsRepository(s).transition(
                approval.id, "resumed", resumed_dagster_run_id=dagster_run_id
            )
            _event(
                s,
                _run(s, approval.run_id),
                "step.completed",
                {"step_id": approval.step_id, "approval_id": str(approval.id)},
            )

    # deciding ---------------------------------------------------------------------------

    def decide(
        self,
        approval_id: uuid.UUID,
        *,
        user: str,
        decision: str,
        modifications: dict[str, Any] | None = None,
        comment: str | None = None,
    ) -> HumanApproval:
        """Record ``user``'s decision; the approval is decided once enough agree.

        ``abort`` and ``retry`` decide at once; ``continue`` needs ``required_approvals``
        distinct approvers (their modifications are merged in order).

        Raises:
            ApprovalError: unknown approval, already decided, user not allowed, decision not
                offered, or modifications that do not fit ``modifiable`` (the field is named).
        """
        try:
            return self._decide(approval_id, user, decision, modifications or {}, comment)
        except (IllegalTransition, IntegrityError):
            # Lost a race with another decision on the same approval (one vote per person,
            # one decision per approval): the database refused the second one.
            raise ApprovalError(
                "conflict",
                f"approval {approval_id} was decided at the same moment by another "
                "decision; a decision is recorded once",
            ) from None

    def _decide(
        self,
        approval_id: uuid.UUID,
        user: str,
        decision: str,
        modifications: dict[str, Any],
        comment: str | None,
    ) -> HumanApproval:
        with self.store.session() as s:
            _lock_run_of(s, approval_id)  # run, then approval: the order every writer takes
            repo = ApprovalsRepository(s)
            repo.lock_pending(approval_id)
            approval = repo.get(approval_id)
            if approval is None:
                raise ApprovalError("not_found", f"no approval {approval_id}")
            if approval.status != "pending":
                raise ApprovalError(
                    "conflict",
                    f"approval {approval_id} is already "
                    f"{approval.status}; a decision is recorded once",
                )
            run = _run(s, approval.run_id)
            member = _check_approver(s, approval, run, user)
            policy = approval.policy
            if decision not in policy.get("decisions", []):
                raise ApprovalError(
                    "invalid",
                    f"decision '{decision}' is not offered (offered: "
                    f"{', '.join(policy.get('decisions', []))})",
                    "decision",
                )
            _check_modifications(policy.get("modifiable", {}), decision, modifications)
            if any(v.user_name == member.name for v in repo.votes(approval_id)):
                raise ApprovalError("conflict", f"{member.name} has already voted on this approval")
            repo.add_vote(
                approval_id=approval_id,
                user_name=member.name,
                decision=decision,
                modifications=self.store.mask(modifications),
                comment=comment,
            )
            return self._settle(s, approval, run, decision, comment)

    def _settle(
        self,
        s: Session,
        approval: HumanApproval,
        run: OrchestrationRun,
        decision: str,
        comment: str | None,
    ) -> HumanApproval:
        repo = ApprovalsRepository(s)
        votes = [v for v in repo.votes(approval.id) if v.decision == decision]
        needed = int(approval.policy.get("required_approvals", 1))
        if decision == "continue" and len(votes) < needed:
            _event(
                s,
                run,
                "checkpoint.voted",
                {"approval_id": str(approval.id), "votes": len(votes), "required": needed},
            )
            return approval
        merged: dict[str, Any] = {}
        for vote in votes:
            merged.update(vote.modifications or {})
        target = _target(s, approval, decision)
        diff = {k: {"from": target.get(k), "to": v} for k, v in merged.items()}
        comments = [v.comment for v in votes if v.comment] or ([comment] if comment else [])
        decided = repo.transition(
            approval.id,
            "decided",
            decision=decision,
            decided_at=utcnow(),
            decided_by=", ".join(v.user_name for v in votes),
            modifications=merged,
            comment="\n".join(comments) or None,
            diff=diff,
        )
        _event(
            s,
            run,
            "checkpoint.decided",
            {
                "approval_id": str(approval.id),
                "step_id": approval.step_id,
                "decision": decision,
                "decided_by": decided.decided_by,
                "comment": decided.comment,
                "diff": diff,
            },
        )
        return decided

    # resuming ---------------------------------------------------------------------------

    def claim(self, approval_id: uuid.UUID, *, by: str) -> Claim | None:
        """Move a decided approval to resuming and prepare the run; None if another won.

        abort: the run is aborted and nothing is launched. retry: the retry step and every
        step after it are reset, with the approver's modifications over the retry step's input.
        A run that ended meanwhile (aborted by an operator) cancels the decision instead.
        The claim makes its segment the run's active one.
        """
        with self.store.session() as s:
            _lock_run_of(s, approval_id)
            try:
                approval = ApprovalsRepository(s).transition(
                    approval_id,
                    "resuming",
                    claimed_at=utcnow(),
                    claimed_by=by,
                    launch_attempts=HumanApproval.launch_attempts + 1,
                )
            except IllegalTransition:
                return None
            run = _run(s, approval.run_id)
            if run.status in TERMINAL_RUN_STATUSES:
                _cancel(s, approval, run, f"the run is already {run.status}")
                return None
            launch = True
            if approval.decision == "abort":
                _abort(s, approval, run)
                launch = False
            elif approval.decision == "retry":
                _reset_for_retry(s, approval, run)
            claim = _claim_of(s, approval, run, launch)
            if launch:
                RunsRepository(s).force_segment(run.id, claim.segment_id)
            return claim

    def reclaim(self, approval_id: uuid.UUID, *, by: str, lease_seconds: float) -> Claim | None:
        """Take over a claim whose segment was never started; None if it is not due.

        The sensor's own claim is asked for again as it is (same segment, same run_key: the
        daemon dedupes it). Another process's claim is taken over once it was released (its
        launch failed) or its lease passed (the process died), as a new claim: of two callers
        taking over at once, one wins (guarded on ``claimed_at``).
        """
        with self.store.session() as s:
            _lock_run_of(s, approval_id)
            repo = ApprovalsRepository(s)
            approval = repo.get(approval_id)
            if approval is None or approval.status != "resuming":
                return None
            run = _run(s, approval.run_id)
            if approval.claimed_by == SENSOR and approval.claimed_at is not None:
                return _claim_of(s, approval, run, True)
            if not repo.take_over(approval, by=by, lease_seconds=lease_seconds):
                return None
            approval = repo.get(approval_id)
            assert approval is not None
            claim = _claim_of(s, approval, run, True)
            RunsRepository(s).force_segment(run.id, claim.segment_id)
            return claim

    def launched(self, approval_id: uuid.UUID, *, dagster_run_id: str, by: str) -> None:
        """The claimed segment exists in Dagster: clear any launch problem, say so."""
        with self.store.session() as s:
            approval = ApprovalsRepository(s).get(approval_id)
            if approval is None:
                return
            ApprovalsRepository(s).set_launch(approval_id, error=None)
            _event(
                s,
                _run(s, approval.run_id),
                "segment.launched",
                {"approval_id": str(approval_id), "dagster_run_id": dagster_run_id, "by": by},
            )

    def launch_failed(self, approval_id: uuid.UUID, *, reason: str, release: bool) -> bool:
        """Record why the claimed segment has not started; returns whether the reason is new.

        ``release`` hands the claim back (its launcher gave up) so the sensor takes it over at
        its next tick instead of after the lease. The event is written only when the reason
        changes, so a sensor retrying every tick does not flood the log.
        """
        with self.store.session() as s:
            repo = ApprovalsRepository(s)
            approval = repo.get(approval_id)
            if approval is None or approval.status != "resuming":
                return False
            changed = approval.launch_error != reason
            repo.set_launch(approval_id, error=reason, release=release)
            if changed:
                _event(
                    s,
                    _run(s, approval.run_id),
                    "segment.launch_failed",
                    {"approval_id": str(approval_id), "reason": reason},
                )
            return changed

    def resumable(self, limit: int = 50) -> list[HumanApproval]:
        """Decided approvals, and claimed ones whose segment may not have been launched."""
        with self.store.session() as s:
            return list(ApprovalsRepository(s).with_status(["decided", "resuming"], limit))

    # timeouts ---------------------------------------------------------------------------

    def expire_due(self, now: datetime | None = None) -> list[tuple[HumanApproval, str]]:
        """Apply ``on_timeout`` to every pending approval past its deadline."""
        now = now or utcnow()
        done: list[tuple[HumanApproval, str]] = []
        with self.store.session() as s:
            for approval in ApprovalsRepository(s).due(now):
                action = approval.policy.get("on_timeout", {}).get("action", "fail")
                if _apply_timeout(s, approval, action, now):
                    done.append((approval, action))
        return done

    def find(self, **filters: Any) -> list[HumanApproval]:
        with self.store.session() as s:
            return list(ApprovalsRepository(s).list(**filters))

    def get(self, approval_id: uuid.UUID) -> HumanApproval:
        with self.store.session() as s:
            approval = ApprovalsRepository(s).get(approval_id)
            if approval is None:
                raise ApprovalError("not_found", f"no approval {approval_id}")
            return approval

    def votes(self, approval_id: uuid.UUID) -> list[Any]:
        with self.store.session() as s:
            return list(ApprovalsRepository(s).votes(approval_id))

    def why_not(self, approval_id: uuid.UUID, user: str) -> str | None:
        """Why ``user`` may not decide this approval now; None if their decision would count.

        Read-only, with the checks of ``decide`` (still pending, the approver rules, one vote
        per person), so a page offers the decision form only to those it would accept. The
        token's role is the caller's to check: the service knows users, not tokens.
        """
        return self.why_not_each([approval_id], user)[approval_id]

    def why_not_each(self, approval_ids: list[uuid.UUID], user: str) -> dict[uuid.UUID, str | None]:
        """``why_not`` for many approvals in one session (a page lists up to 200)."""
        with self.store.session() as s:
            return {approval_id: _why_not(s, approval_id, user) for approval_id in approval_ids}


# helpers ------------------------------------------------------------------------------------


def _run(s: Session, run_id: uuid.UUID) -> OrchestrationRun:
    run = RunsRepository(s).get(run_id, include_deleted=True)
    if run is None:
        raise ApprovalError("not_found", f"no orchestration run {run_id}")
    return run


def _await(s: Session, run: OrchestrationRun) -> None:
    if run.status == "running":
        RunsRepository(s).transition(run.id, "awaiting_approval")


def _event(s: Session, run: OrchestrationRun, type_: str, payload: dict[str, Any]) -> None:
    EventsRepository(s).append(
        organization=run.organization, type=type_, run_id=run.id, payload=payload
    )


def _check_approver(s: Session, approval: HumanApproval, run: OrchestrationRun, name: str) -> User:
    user = UsersRepository(s).get(run.organization, name)
    if user is None:
        raise ApprovalError(
            "forbidden", f"'{name}' is not a user of organization '{run.organization}'"
        )
    approvers = set(approval.policy.get("approvers") or [])
    if approvers and not ({user.name, *user.groups} & approvers):
        raise ApprovalError(
            "forbidden",
            f"'{name}' is not among the approvers of this "
            f"checkpoint ({', '.join(sorted(approvers))})",
        )
    if not approval.policy.get("allow_self_approval") and _launcher(s, run) == user.name:
        raise ApprovalError("forbidden", f"'{name}' launched this run and may not approve it")
    return user


def _launcher(s: Session, run: OrchestrationRun) -> str | None:
    """Who launched the run, for no-self-approval: inside a tree, whoever launched the root."""
    if run.root_run_id is None:
        return run.created_by
    root = RunsRepository(s).get(run.root_run_id, include_deleted=True)
    return root.created_by if root is not None else run.created_by


def _why_not(s: Session, approval_id: uuid.UUID, user: str) -> str | None:
    repo = ApprovalsRepository(s)
    approval = repo.get(approval_id)
    if approval is None:
        return f"no approval {approval_id}"
    if approval.status != "pending":
        return f"the approval is no longer pending (it is {approval.status})"
    try:
        member = _check_approver(s, approval, _run(s, approval.run_id), user)
    except ApprovalError as exc:
        return str(exc)
    if any(v.user_name == member.name for v in repo.votes(approval_id)):
        return f"{member.name} has already voted on this approval"
    return None


def _check_modifications(modifiable: dict[str, str], decision: str, mods: dict[str, Any]) -> None:
    if mods and decision == "abort":
        raise ApprovalError("invalid", "an abort takes no modifications", "modifications")
    for field, value in mods.items():
        if field not in modifiable:
            allowed = ", ".join(sorted(modifiable)) or "none"
            raise ApprovalError(
                "invalid",
                f"field '{field}' is not modifiable (modifiable: {allowed})",
                f"modifications.{field}",
            )
        if not matches_type(value, modifiable[field]):
            raise ApprovalError(
                "invalid",
                f"field '{field}' must be of type {modifiable[field]}, got {type(value).__name__}",
                f"modifications.{field}",
            )


def _target(s: Session, approval: HumanApproval, decision: str) -> dict[str, Any]:
    """What the modifications change: the reviewed value, or the retry step's last input."""
    if decision == "retry":
        step = StepsRepository(s).get(approval.run_id, approval.policy.get("retry_step", ""))
        value = step.input if step is not None else None
    else:
        value = approval.show
    return value if isinstance(value, dict) else {}


def _lock_run_of(s: Session, approval_id: uuid.UUID) -> None:
    run_id = s.scalar(select(HumanApproval.run_id).where(HumanApproval.id == approval_id))
    if run_id is not None:
        RunsRepository(s).lock(run_id)


def _claim_of(s: Session, approval: HumanApproval, run: OrchestrationRun, launch: bool) -> Claim:
    newest = DefinitionsRepository(s).latest(run.organization, run.orchestration)
    return Claim(
        approval.id,
        run.id,
        run.orchestration,
        approval.decision or "",
        launch,
        dict(run.inputs),
        run.last_dagster_run_id,
        run.version,
        job=segments.job_for(run.orchestration, run.version, newest.version if newest else None),
        attempt=approval.launch_attempts,
        decided_by=approval.decided_by,
        lineage=tuple(segments.lineage_tags(run).items()),
    )


def _cancel(s: Session, approval: HumanApproval, run: OrchestrationRun, why: str) -> None:
    ApprovalsRepository(s).transition(approval.id, "cancelled", launch_error=None)
    _event(
        s,
        run,
        "checkpoint.cancelled",
        {"approval_id": str(approval.id), "step_id": approval.step_id, "reason": why},
    )


def cancel_open(s: Session, run: OrchestrationRun, why: str) -> list[uuid.UUID]:
    """Cancel every approval of ``run`` still waiting for a person or for its segment."""
    cancelled = []
    repo = ApprovalsRepository(s)
    for approval in repo.list(run_id=run.id):
        if approval.status in ("pending", "decided", "resuming"):
            _cancel(s, approval, run, why)
            cancelled.append(approval.id)
    return cancelled


def _abort(s: Session, approval: HumanApproval, run: OrchestrationRun) -> None:
    reason = f"aborted at checkpoint '{approval.step_id}' by {approval.decided_by}"
    StepsRepository(s).transition(
        run.id, approval.step_id, "failed", error={"message": reason, "type": "Aborted"}
    )
    RunsRepository(s).transition(run.id, "aborted", error={"message": reason})
    ApprovalsRepository(s).transition(approval.id, "resumed")
    _event(s, run, "run.aborted", {"approval_id": str(approval.id), "reason": reason})
    # Launched by the compensation sensor (an abort decision launches nothing itself).
    plan_compensation(s, run, "aborted")


def _spec(s: Session, run: OrchestrationRun) -> OrchestrationSpec:
    definition = DefinitionsRepository(s).get_by_id(run.definition_id)
    assert definition is not None
    return OrchestrationSpec.model_validate(definition.spec)


def _reset_for_retry(s: Session, approval: HumanApproval, run: OrchestrationRun) -> None:
    retry_step = approval.policy["retry_step"]
    steps = StepsRepository(s)
    for step_id in descendants(_spec(s, run), retry_step):
        row = steps.get(run.id, step_id)
        if row is not None and row.status != "pending":
            steps.transition(run.id, step_id, "pending", output=None, error=None)
    steps.set_input_override(run.id, retry_step, approval.modifications or None)
    _event(
        s,
        run,
        "step.reset",
        {
            "step_id": retry_step,
            "approval_id": str(approval.id),
            "input_override": approval.modifications,
        },
    )


def _apply_timeout(s: Session, approval: HumanApproval, action: str, now: datetime) -> bool:
    repo = ApprovalsRepository(s)
    run = _run(s, approval.run_id)
    payload = {"approval_id": str(approval.id), "step_id": approval.step_id, "action": action}
    if action == "escalate":
        return _escalate(s, approval, run, now, payload)
    try:
        if action == "continue":
            repo.transition(
                approval.id,
                "decided",
                decision="continue",
                decided_by="timeout",
                decided_at=now,
                modifications={},
                diff={},
            )
        else:
            repo.transition(approval.id, "expired", decided_at=now)
    except IllegalTransition:
        return False  # decided meanwhile: the person was in time
    _event(s, run, "checkpoint.expired", payload)
    if action in ("abort", "fail"):
        reason = f"checkpoint '{approval.step_id}' timed out ({action})"
        StepsRepository(s).transition(
            run.id, approval.step_id, "failed", error={"message": reason, "type": "Timeout"}
        )
        target = "aborted" if action == "abort" else "failed"
        RunsRepository(s).transition(run.id, target, error={"message": reason})
        _event(s, run, f"run.{target}", {"reason": reason})
        plan_compensation(s, run, target)
    return True


def _escalate(
    s: Session,
    approval: HumanApproval,
    run: OrchestrationRun,
    now: datetime,
    payload: dict[str, Any],
) -> bool:
    rule = approval.policy["on_timeout"]
    timeout = rule.get("timeout")
    policy = {
        **approval.policy,
        "approvers": rule["to"],
        "on_timeout": {"action": rule.get("on_timeout", "fail")},
    }
    changed = ApprovalsRepository(s).update_pending(
        approval.id,
        policy=policy,
        escalations=approval.escalations + 1,
        expires_at=now + parse_duration(timeout) if timeout else None,
    )
    if changed:
        _event(s, run, "checkpoint.escalated", {**payload, "to": rule["to"]})
    return changed
