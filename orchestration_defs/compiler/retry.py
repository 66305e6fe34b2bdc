"""A step's ``retry`` as Dagster's RetryPolicy."""

from __future__ import annotations

from dagster import Backoff, Jitter, RetryPolicy

from orchestration_defs.language.models import RetrySpec

_BACKOFF = {"constant": None, "linear": Backoff.LINEAR, "exponential": Backoff.EXPONENTIAL}
_JITTER = {"none": None, "full": Jitter.FULL, "plus_minus": Jitter.PLUS_MINUS}


def retry_policy(spec: RetrySpec) -> RetryPolicy | None:
    """None when the step gets a single attempt."""
    if spec.max_attempts <= 1:
        return None
    return RetryPolicy(
        max_retries=spec.max_attempts - 1,
        delay=spec.delay_seconds or None,
        backoff=_BACKOFF[spec.backoff],
        jitter=_JITTER[spec.jitter],
    )
