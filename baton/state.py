"""The run and step state machines: which status may follow which.

Transitions are applied with a guarded UPDATE (``WHERE status IN allowed``), so two callers
racing for the same change cannot both win.
"""

from __future__ import annotations

RUN_TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"running", "failed", "aborted"}),
    "running": frozenset(
        {"awaiting_approval", "awaiting_children", "completed", "failed", "aborted"}
    ),
    # A decided approval resumes the run; an expired one may fail or abort it.
    "awaiting_approval": frozenset({"running", "failed", "aborted"}),
    # The last child's end resumes it; a failed child (on_child_failure: fail) fails it.
    "awaiting_children": frozenset({"running", "failed", "aborted"}),
    # A manual retry of a failed run starts a new segment.
    "failed": frozenset({"running"}),
    "completed": frozenset(),
    "aborted": frozenset(),
}
TERMINAL_RUN_STATUSES = frozenset({"completed", "failed", "aborted"})

APPROVAL_TRANSITIONS: dict[str, frozenset[str]] = {
    # A vote short of required_approvals leaves it pending; escalation keeps it pending too.
    "pending": frozenset({"decided", "expired", "cancelled"}),
    # Only the caller that moves decided -> resuming launches the next segment. An abort of
    # the run (or a run that ended meanwhile) cancels a decision not yet acted on.
    "decided": frozenset({"resuming", "cancelled"}),
    "resuming": frozenset({"resumed", "cancelled"}),
    "resumed": frozenset(),
    "expired": frozenset(),
    "cancelled": frozenset(),
}

STEP_TRANSITIONS: dict[str, frozenset[str]] = {
    # pending -> failed: the step could not start (its template failed to render).
    "pending": frozenset({"running", "skipped", "waiting", "failed"}),
    # running -> running: a worker died mid-attempt and a new attempt starts.
    # running -> cancelled: the run was aborted while the attempt ran.
    "running": frozenset({"running", "completed", "failed", "waiting", "cancelled"}),
    "waiting": frozenset({"running", "completed", "failed", "skipped", "pending"}),
    "failed": frozenset({"running", "skipped", "pending"}),
    # -> pending: a checkpoint's retry decision resets the retry step and what follows it.
    # -> compensated: its compensation ran after the run was aborted or failed.
    "completed": frozenset({"pending", "compensated"}),
    "skipped": frozenset({"pending"}),
    # An aborted run's step: terminal, as the run is.
    "cancelled": frozenset(),
    # Undone by its compensation: no longer done, so a later retry of the run runs it again.
    "compensated": frozenset({"pending", "running"}),
}
DONE_STEP_STATUSES = frozenset({"completed", "skipped"})

COMPENSATION_TRANSITIONS: dict[str, frozenset[str]] = {
    # A claim (the sensor, an abort's fast path) moves NULL (or a completed earlier round)
    # to pending; the compensation job's first op moves it to running.
    "pending": frozenset({"pending", "running", "failed"}),
    "running": frozenset({"completed", "failed", "running"}),
    # An operator's re-run of the failed compensations.
    "failed": frozenset({"pending"}),
    # A retried run that fails again compensates the steps it completed since.
    "completed": frozenset({"pending"}),
}


class IllegalTransition(Exception):
    """A status change the state machine does not allow (or lost to a concurrent change)."""

    def __init__(self, kind: str, ident: str, current: str | None, target: str) -> None:
        self.current = current
        self.target = target
        super().__init__(f"{kind} {ident}: cannot go from {current or 'missing'} to {target}")


def sources_of(transitions: dict[str, frozenset[str]], target: str) -> list[str]:
    """The statuses from which ``target`` may be reached."""
    return sorted(s for s, targets in transitions.items() if target in targets)
