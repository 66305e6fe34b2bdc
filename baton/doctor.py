"""What waits on the system rather than on a person, and why.

Every waiting state Baton has is either progressing or listed here with its reason: decided
approvals no one claimed (is the daemon running?), claimed approvals whose segment has not
started (the launch failed, the job is missing, the claimer died), runs launched that no
Dagster run picked up, step attempts still running past their lease (orphans the reaper has
not failed: is the daemon running ``baton_reaper_sensor``?), compensations planned or claimed
but not started (``baton.compensation``), webhooks in the inbox that started no run, invalid
library files, stored webhook secrets that no configured key decrypts (their webhooks are
refused, their deliveries fail), and child runs (``baton.doctor_children``: parents not
resumed, launches claimed but not started, children waiting for a slot, the last said to be
progressing while a sibling runs).
``baton doctor`` prints it; ``/metrics`` counts it (``baton_waiting_on_system``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from baton.db.models import (
    HumanApproval,
    LibraryFile,
    OrchestrationEvent,
    OrchestrationRun,
    OrchestrationStep,
    StepCompensation,
    WebhookInbox,
    utcnow,
)
from baton.doctor_children import KINDS as CHILD_KINDS
from baton.doctor_children import child_waits
from baton.settings import Settings, get_settings
from baton.webhooks.crypto import SecretKeyError
from baton.webhooks.key_rotation import SUBSCRIPTIONS, Stored, undecryptable

# How long a state may last before it counts as waiting on the system: a healthy deployment
# moves a decision, a launch or a webhook on well within it (sensors tick every 5 s).
GRACE = timedelta(seconds=30)
KINDS = (
    "approval_unclaimed",
    "approval_not_launched",
    "run_not_started",
    "step_orphaned",
    "compensation_not_started",
    "compensation_running",
    "webhook",
    "library",
    "secret_undecryptable",
    *CHILD_KINDS,
)


@dataclass(frozen=True)
class Waiting:
    """One thing that waits on the system."""

    kind: str
    id: str
    since: datetime | None
    reason: str
    run_id: str | None = None
    # False: it moves on by itself (a child waiting for a slot while a sibling runs).
    stuck: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.id,
            "run_id": self.run_id,
            "since": self.since.isoformat() if self.since else None,
            "reason": self.reason,
            "stuck": self.stuck,
        }


def waiting_on_system(
    s: Session,
    now: datetime | None = None,
    lease: timedelta | None = None,
    *,
    settings: Settings | None = None,
) -> list[Waiting]:
    """Everything that waits on the system now, oldest first within each kind; ``lease``:
    how long a launch claim may go unstarted (default BATON_SENSORS__CLAIM_LEASE_SECONDS);
    ``settings``: whose keys stored secrets are checked against (default: this process's)."""
    now = now or utcnow()
    if lease is None:
        lease = timedelta(seconds=get_settings().sensors.claim_lease_seconds)
    found = [
        *_unclaimed(s, now),
        *_not_launched(s, now),
        *_runs_not_started(s, now),
        *_orphaned_steps(s, now, timedelta(seconds=get_settings().sensors.step_lease_seconds)),
        *_compensations_not_started(s, now, lease),
        *_compensations_running(
            s, now, timedelta(seconds=get_settings().sensors.step_lease_seconds)
        ),
        *_webhooks(s, now),
        *_library(s),
        *_secrets(s, settings or get_settings()),
        *child_waits(s, now, GRACE, lease, Waiting),
    ]
    return found


def _aware(value: datetime | None) -> datetime | None:
    """SQLite gives naive datetimes back; every stored time is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=utcnow().tzinfo)
    return value


def _unclaimed(s: Session, now: datetime) -> list[Waiting]:
    rows = s.scalars(
        select(HumanApproval)
        .where(HumanApproval.status == "decided", HumanApproval.decided_at < now - GRACE)
        .order_by(HumanApproval.decided_at)
    )
    return [
        Waiting(
            "approval_unclaimed",
            str(a.id),
            _aware(a.decided_at),
            "decided but not claimed: no process launched its segment and the approval "
            "sensor has not picked it up (is the Dagster daemon running?)",
            str(a.run_id),
        )
        for a in rows
    ]


def _not_launched(s: Session, now: datetime) -> list[Waiting]:
    waiting = []
    rows = s.scalars(
        select(HumanApproval)
        .where(HumanApproval.status == "resuming")
        .order_by(HumanApproval.decided_at)
    )
    for a in rows:
        claimed = _aware(a.claimed_at) or _aware(a.decided_at)
        if a.launch_error:
            reason = f"{a.launch_error} (the approval sensor retries)"
        elif claimed is not None and claimed < now - GRACE and not _started_since(s, a, claimed):
            reason = f"claimed by {a.claimed_by or '?'} but no segment has started"
        else:
            continue
        waiting.append(Waiting("approval_not_launched", str(a.id), claimed, reason, str(a.run_id)))
    return waiting


def _started_since(s: Session, approval: HumanApproval, since: datetime) -> bool:
    started = s.scalar(
        select(func.count())
        .select_from(OrchestrationEvent)
        .where(
            OrchestrationEvent.run_id == approval.run_id,
            OrchestrationEvent.type == "run.segment_started",
            OrchestrationEvent.created_at >= since,
        )
    )
    return bool(started)


def _runs_not_started(s: Session, now: datetime) -> list[Waiting]:
    rows = s.scalars(
        select(OrchestrationRun)
        .where(
            OrchestrationRun.status == "pending",
            OrchestrationRun.created_at < now - GRACE,
            OrchestrationRun.deleted_at.is_(None),
            # A child starts when a slot frees up and its launch is claimed: doctor_children.
            OrchestrationRun.parent_run_id.is_(None),
        )
        .order_by(OrchestrationRun.created_at)
    )
    return [
        Waiting(
            "run_not_started",
            str(r.id),
            _aware(r.created_at),
            "created but no Dagster run has started it (queued behind the run limit, the "
            "daemon is down, or its launch was lost)",
            str(r.id),
        )
        for r in rows
    ]


def _orphaned_steps(s: Session, now: datetime, lease: timedelta) -> list[Waiting]:
    """Running attempts whose lease ran out more than GRACE ago: the reaper should have
    failed them by now."""
    rows = s.scalars(
        select(OrchestrationStep)
        .where(
            OrchestrationStep.status == "running",
            OrchestrationStep.heartbeat_at < now - lease - GRACE,
        )
        .order_by(OrchestrationStep.heartbeat_at)
    )
    return [
        Waiting(
            "step_orphaned",
            f"{r.run_id}/{r.step_id}",
            _aware(r.heartbeat_at),
            f"attempt {r.attempt} of Dagster run {r.dagster_run_id} is running with no heartbeat "
            f"for over {lease.total_seconds():g} s and the reaper has not failed it (is the "
            "Dagster daemon running baton_reaper_sensor?)",
            str(r.run_id),
        )
        for r in rows
    ]


def _compensations_not_started(s: Session, now: datetime, lease: timedelta) -> list[Waiting]:
    """Compensations planned but not started: unclaimed for over GRACE (the compensation
    sensor claims them within a daemon loop), or claimed and not started past the lease."""
    run = OrchestrationRun
    rows = s.scalars(
        select(run)
        .where(run.compensation == "pending", run.deleted_at.is_(None))
        .order_by(run.finished_at)
    )
    waiting = []
    for r in rows:
        claimed = _aware(r.compensation_claimed_at)
        # Pending since it was planned or reopened (that write stamps updated_at), not since
        # the run finished: a compensation an operator reopens today is not a day late.
        since = claimed or _aware(r.updated_at) or _aware(r.finished_at)
        why = f" (last launch: {r.compensation_error})" if r.compensation_error else ""
        if claimed is None and since is not None and since < now - GRACE:
            reason = (
                "planned but not claimed: baton_compensation_sensor has not launched it (is "
                f"the Dagster daemon running?){why}"
            )
        elif claimed is not None and claimed < now - lease:
            reason = (
                f"claimed by {r.compensation_claimed_by or '?'} but not started past its "
                f"lease ({lease.total_seconds():g} s); the compensation sensor takes it over "
                f"unless Dagster still holds its segment (its skip reason says so){why}"
            )
        else:
            continue
        waiting.append(Waiting("compensation_not_started", str(r.id), since, reason, str(r.id)))
    return waiting


def _compensations_running(s: Session, now: datetime, lease: timedelta) -> list[Waiting]:
    """Compensation calls running past the step lease. Their rows have no heartbeat: the
    reaper ends a compensation whose Dagster run ended, so one listed here is either a long
    call or a segment the reaper has not seen end (is the daemon running?)."""
    row, run = StepCompensation, OrchestrationRun
    rows = s.execute(
        select(row, run.compensation_segment)
        .join(run, run.id == row.run_id)
        .where(row.status == "running", run.compensation == "running", row.started_at < now - lease)
        .order_by(row.started_at)
    ).all()
    return [
        Waiting(
            "compensation_running",
            f"{r.run_id}/{r.step_id}",
            _aware(r.started_at),
            f"the compensation of step '{r.step_id}' (segment {segment or '?'}) has been running "
            f"for over {lease.total_seconds():g} s: a long call, or its Dagster run ended and "
            "baton_reaper_sensor has not failed it yet (is the Dagster daemon running?)",
            str(r.run_id),
        )
        for r, segment in rows
    ]


def _webhooks(s: Session, now: datetime) -> list[Waiting]:
    rows = s.scalars(
        select(WebhookInbox)
        .where(WebhookInbox.status == "pending", WebhookInbox.received_at < now - GRACE)
        .order_by(WebhookInbox.id)
    )
    waiting = []
    for w in rows:
        held = (w.result or {}).get("waiting")
        reason = (
            "; ".join(held)
            if held
            else "not yet turned into a run (is the Dagster daemon running its webhook sensor?)"
        )
        waiting.append(
            Waiting("webhook", f"{w.source}/{w.webhook_id}", _aware(w.received_at), reason)
        )
    return waiting


def _library(s: Session) -> list[Waiting]:
    rows = s.scalars(select(LibraryFile).order_by(LibraryFile.path))
    return [
        Waiting(
            "library",
            f.path,
            _aware(f.synced_at),
            "invalid, left out of the code location: "
            + "; ".join(str(e.get("text") or e.get("message")) for e in f.errors),
        )
        for f in rows
        if f.errors
    ]


# What to do about a secret no configured key decrypts (docs/production.md, "Rotating
# BATON_SECRET_KEY"); the same words in `baton doctor`, whatever the row.
SECRET_FIX = (
    "set BATON_SECRET_KEY_PREVIOUS to the old key on every process, restart, then run "
    "`baton secrets rotate-key` (or give it a new secret)"
)


def _secrets(s: Session, settings: Settings) -> list[Waiting]:
    """Stored webhook secrets that no configured key decrypts: the walk of ``baton secrets
    rotate-key``, read only."""
    try:
        found = undecryptable(s, settings)
    except SecretKeyError as exc:
        # A malformed key: its message names the variable (and position), never the value.
        return [Waiting("secret_undecryptable", "BATON_SECRET_KEY", None, str(exc))]
    return [
        Waiting(
            "secret_undecryptable",
            stored.row,
            stored.since,
            "its secret cannot be decrypted with BATON_SECRET_KEY nor any key in "
            f"BATON_SECRET_KEY_PREVIOUS, so {_effect(stored)}: {SECRET_FIX}",
        )
        for stored in found
    ]


def _effect(stored: Stored) -> str:
    """What an undecryptable secret stops, by the row that holds it."""
    if stored.kind == SUBSCRIPTIONS:
        # An ended subscription sends nothing, but rotate-key stops on it all the same.
        return "`baton secrets rotate-key` stops on it" if stored.ended else "its deliveries fail"
    # The source's secrets are decrypted together: one unreadable stops all of its webhooks.
    return "the source's webhooks are answered 503 and stored nowhere"
