"""Which operator action applies in which state, and the refusal that names the state if not.

The rules of retry, skip and abort in one place, as plain functions of the statuses, so the
lifecycle checks them inside its guarded transaction and a table-driven test checks every run
status x step status. An orphaned step is a failed one whose error kind is ``orphaned`` (the
reaper failed its attempt): its call may have reached the agent.
"""

from __future__ import annotations

from typing import Any

ORPHANED = "orphaned"
RETRYABLE_STEPS = frozenset({"failed", ORPHANED})
SKIPPABLE_STEPS = frozenset({"failed", ORPHANED, "pending"})
# A pending step may be skipped ahead of time while the run is under way or stopped.
PENDING_SKIP_RUNS = ("running", "awaiting_approval", "awaiting_children", "failed")
ABORTABLE_RUNS = ("pending", "running", "awaiting_approval", "awaiting_children")


def step_state(status: str, error: dict[str, Any] | None) -> str:
    """The step's status as an operator sees it: ``orphaned`` for a reaped attempt."""
    if status == "failed" and (error or {}).get("kind") == ORPHANED:
        return ORPHANED
    return status


def retry_refusal(run_status: str, state: str, step_id: str) -> str | None:
    """Why the step cannot be retried now (None: it can)."""
    if state not in RETRYABLE_STEPS:
        return (
            f"step '{step_id}' is {state} (the run is {run_status}); only a failed or "
            "orphaned step can be retried"
        )
    if run_status != "failed":
        return (
            f"step '{step_id}' is {state} but the run is {run_status}; a failed or orphaned "
            "step can be retried only once its run has failed"
        )
    return None


def skip_refusal(run_status: str, state: str, step_id: str) -> str | None:
    """Why the step cannot be skipped now (None: it can)."""
    if state not in SKIPPABLE_STEPS:
        return (
            f"step '{step_id}' is {state} (the run is {run_status}); only a failed, orphaned "
            "or pending step can be skipped"
        )
    if state == "pending":
        if run_status in PENDING_SKIP_RUNS:
            return None
        return (
            f"step '{step_id}' is pending but the run is {run_status}; a pending step can be "
            f"skipped only while the run is {_either(PENDING_SKIP_RUNS)}"
        )
    if run_status != "failed":
        return (
            f"step '{step_id}' is {state} but the run is {run_status}; a failed or orphaned "
            "step can be skipped only once its run has failed"
        )
    return None


def abort_refusal(run_status: str, run_id: object) -> str | None:
    """Why the run cannot be aborted now (None: it can)."""
    if run_status in ABORTABLE_RUNS:
        return None
    return (
        f"run {run_id} is {run_status}; it already ended (only a {_either(ABORTABLE_RUNS)} "
        "run can be aborted)"
    )


def compensation_refusal(run_id: object, compensation: str | None) -> str | None:
    """Why no step of the run may be retried or skipped: its compensation was claimed, is
    running or ran (its steps are being or were undone); None when it has none."""
    if compensation is None:
        return None
    return (
        f"run {run_id}: its compensation is {compensation}; a run whose completed steps are "
        "being or were compensated is not retried or skipped"
    )


def continues_run(run_status: str, state: str) -> bool:
    """Whether an accepted skip continues the run in a new segment (a failed step of a
    failed run), rather than being recorded for the step op to reuse when it gets there."""
    return state != "pending" and run_status == "failed"


def _either(values: tuple[str, ...]) -> str:
    return ", ".join(values[:-1]) + " or " + values[-1]
