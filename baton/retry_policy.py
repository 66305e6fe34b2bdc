"""A step's ``retry:`` as Dagster's ``RetryPolicy``: the one translation of the spec.

The compiler attaches it to the step's op (Dagster's own op retries); the reaper asks it for
the wait before retrying an orphaned attempt (``baton.orphan_retry``). Both go through
Dagster's ``RetryPolicy.calculate_delay``, so an orphan waits what Dagster would have waited
and no copy of the backoff formula can drift from it. Dagster is imported where used: the
core's CLI paths that import the reaper stay light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestration_defs.language.models import RetrySpec

if TYPE_CHECKING:
    from dagster import RetryPolicy


def retry_policy(spec: RetrySpec) -> RetryPolicy | None:
    """None when the step gets a single attempt."""
    from dagster import Backoff, Jitter, RetryPolicy

    if spec.max_attempts <= 1:
        return None
    backoff = {"constant": None, "linear": Backoff.LINEAR, "exponential": Backoff.EXPONENTIAL}
    jitter = {"none": None, "full": Jitter.FULL, "plus_minus": Jitter.PLUS_MINUS}
    return RetryPolicy(
        max_retries=spec.max_attempts - 1,
        delay=spec.delay_seconds or None,
        backoff=backoff[spec.backoff],
        jitter=jitter[spec.jitter],
    )


def delay_seconds(spec: RetrySpec, retry_number: int) -> float:
    """The wait before retry ``retry_number`` (1 for the first), as Dagster computes it for
    the op retries of the same spec (0 for a step with a single attempt or no delay)."""
    policy = retry_policy(spec)
    if policy is None or policy.delay is None:
        return 0.0
    # Jitter may take plus_minus below zero; Dagster's sleep treats that as no wait.
    return max(float(policy.calculate_delay(retry_number)), 0.0)


__all__ = ["delay_seconds", "retry_policy"]
