"""A step's ``retry:`` as Dagster's RetryPolicy: the op retries and the reaper's orphan retries
wait what Dagster's ``calculate_delay`` says for the same spec."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from dagster import Backoff, Jitter

from baton.orphan_retry import plan_for
from baton.retry_policy import delay_seconds, retry_policy
from orchestration_defs.language.models import RetrySpec


def test_a_single_attempt_has_no_policy_and_no_wait() -> None:
    assert retry_policy(RetrySpec()) is None
    assert delay_seconds(RetrySpec(), 1) == 0.0


def test_the_spec_becomes_dagsters_policy() -> None:
    spec = RetrySpec(max_attempts=4, delay_seconds=2, backoff="exponential", jitter="plus_minus")
    policy = retry_policy(spec)
    assert policy is not None
    assert (policy.max_retries, policy.delay) == (3, 2)
    assert (policy.backoff, policy.jitter) == (Backoff.EXPONENTIAL, Jitter.PLUS_MINUS)


@pytest.mark.parametrize(
    ("backoff", "expected"),
    [("constant", [5, 5, 5]), ("linear", [5, 10, 15]), ("exponential", [5, 15, 35])],
)
def test_the_wait_is_dagsters(backoff: str, expected: list[float]) -> None:
    spec = RetrySpec.model_validate({"max_attempts": 4, "delay_seconds": 5, "backoff": backoff})
    assert [delay_seconds(spec, n) for n in (1, 2, 3)] == expected


def test_jitter_stays_within_dagsters_bounds_and_never_below_zero() -> None:
    spec = RetrySpec(max_attempts=2, delay_seconds=4, jitter="plus_minus")
    waits = [delay_seconds(spec, 1) for _ in range(200)]
    assert all(0 <= w <= 8 for w in waits)


def test_the_orphans_plan_follows_the_policy() -> None:
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    spec = RetrySpec.model_validate({"max_attempts": 3, "delay_seconds": 5, "backoff": "linear"})
    first = plan_for(spec, 1, now)
    assert (first.will_retry, first.retry_at, first.note) == (
        True,
        now + timedelta(seconds=5),
        "retry 2 of 3 in 5 s",
    )
    assert plan_for(spec, 2, now).retry_at == now + timedelta(seconds=10)
    last = plan_for(spec, 3, now)
    assert (last.will_retry, last.retry_at) == (False, None)
    assert last.note == "retry policy exhausted (3 of 3 attempts)"
