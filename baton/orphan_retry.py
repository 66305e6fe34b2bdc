"""The step's own ``retry:`` policy, applied by the reaper to an orphaned attempt.

The process that would have applied the policy (Dagster's op retry inside the run worker) is
gone, so the reaper applies it: an orphan whose step allows another attempt is failed with its
reason and marked ``will_retry`` with the moment the policy's delay ends (``retry_at``, on the
step's error and the run's). Once that moment passes, a reaper tick retries it through the
lifecycle (``Lifecycle.prepare_retry``, by "reaper" via "sensor"): a new segment of the same
orchestration run that re-runs the step, completed steps reused. The attempt's call may have
reached the agent, so the retry keeps its idempotency key (the lifecycle leaves
``call_number`` alone for an orphan).

The retry spec is read from the stored definition (the run's orchestration and version in
Baton's definitions table), never from the code location. "Attempts" are the step's attempt
counter: every start of the step in this run, re-executions and operator retries included.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from baton.db.models import OrchestrationRun, OrchestrationStep
from baton.lifecycle import Lifecycle, LifecycleError, Prepared
from baton.store.definitions import DefinitionsRepository
from baton.store.service import RunStore
from orchestration_defs.language.models import OrchestrationSpec, RetrySpec

BY = "reaper"
VIA = "sensor"


@dataclass(frozen=True)
class RetryPlan:
    """What the policy says about one orphaned attempt."""

    will_retry: bool
    retry_at: datetime | None
    note: str  # "retry 2 of 3 in 5 s" or "retry policy exhausted (3 of 3 attempts)"

    def fields(self) -> dict[str, Any]:
        """What the orphan's error and its event carry."""
        at = self.retry_at.isoformat() if self.retry_at else None
        return {"will_retry": self.will_retry, "retry_at": at, "retry_policy": self.note}


def delay_seconds(spec: RetrySpec, retry_number: int) -> float:
    """The policy's wait before retry ``retry_number`` (1 for the first), as Dagster's
    ``calculate_delay`` computes it for the op retries of the same spec."""
    base = spec.delay_seconds
    if spec.backoff == "exponential":
        delay = ((2**retry_number) - 1) * base
    elif spec.backoff == "linear":
        delay = base * retry_number
    else:
        delay = base
    if spec.jitter == "full":
        delay = random.random() * delay
    elif spec.jitter == "plus_minus":
        delay = delay + (2 * random.random() * base) - base
    return max(delay, 0.0)


def plan_for(spec: RetrySpec, attempt: int, now: datetime) -> RetryPlan:
    """Whether the orphan of attempt ``attempt`` gets another one, and when."""
    total = spec.max_attempts
    if attempt >= total:
        return RetryPlan(False, None, f"retry policy exhausted ({attempt} of {total} attempts)")
    wait = delay_seconds(spec, attempt)
    note = f"retry {attempt + 1} of {total} in {wait:g} s"
    return RetryPlan(True, now + timedelta(seconds=wait), note)


def retry_spec(session: Any, run: OrchestrationRun, step_id: str) -> RetrySpec:
    """The step's ``retry:`` in the stored definition of the run's version (a single attempt
    when the version or the step is not stored, or it is not an agent step)."""
    definition = DefinitionsRepository(session).get(
        run.organization, run.orchestration, run.version
    )
    if definition is None:
        return RetrySpec()
    spec = OrchestrationSpec.model_validate(definition.spec)
    step = next((s for s in spec.steps if s.id == step_id), None)
    return step.retry if step is not None else RetrySpec()


def due(store: RunStore, now: datetime) -> list[tuple[uuid.UUID, str]]:
    """Orphaned steps of failed runs whose policy retry is due: (run, step), oldest first."""
    with store.session() as s:
        rows = s.execute(
            select(OrchestrationStep.run_id, OrchestrationStep.step_id, OrchestrationStep.error)
            .join(OrchestrationRun, OrchestrationRun.id == OrchestrationStep.run_id)
            .where(OrchestrationStep.status == "failed", OrchestrationRun.status == "failed")
            .order_by(OrchestrationStep.finished_at)
        ).all()
    found = []
    for run_id, step_id, error in rows:
        error = error or {}
        if error.get("kind") != "orphaned" or not error.get("will_retry"):
            continue
        at = error.get("retry_at")
        if at is None or datetime.fromisoformat(at) <= now:
            found.append((run_id, step_id))
    return found


def start_due(store: RunStore, now: datetime) -> list[Prepared]:
    """Put every due orphan back to pending and its run to running (guarded: an operator's
    retry, skip or abort that came first wins, and this one is dropped); returns the segments
    to launch."""
    lifecycle = Lifecycle(store, None, via=VIA)
    prepared = []
    for run_id, step_id in due(store, now):
        try:
            prepared.append(lifecycle.prepare_retry(run_id, step_id, by=BY))
        except LifecycleError:
            continue  # someone else moved the run on since the orphan was failed
    return prepared


__all__ = ["RetryPlan", "delay_seconds", "due", "plan_for", "retry_spec", "start_due"]
