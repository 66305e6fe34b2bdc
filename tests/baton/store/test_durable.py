"""write_durably: outages are waited out within the budget; refusals fail at once."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from baton.store.durable import write_durably


def outage() -> OperationalError:
    return OperationalError("INSERT ...", {}, Exception("server closed the connection"))


def test_an_outage_is_retried_with_growing_waits_until_the_write_lands() -> None:
    failures = [outage(), outage(), outage()]
    waits: list[float] = []

    def write() -> str:
        if failures:
            raise failures.pop()
        return "kept"

    assert write_durably(write, budget_seconds=120, sleep=waits.append) == "kept"
    assert waits == [0.5, 1.0, 2.0]


def test_the_last_outage_is_raised_once_the_budget_is_spent() -> None:
    def write() -> None:
        raise outage()

    with pytest.raises(OperationalError):
        write_durably(write, budget_seconds=0, sleep=lambda _s: None)


def test_a_refused_write_fails_at_once() -> None:
    calls: list[int] = []

    def write() -> None:
        calls.append(1)
        raise IntegrityError("INSERT ...", {}, Exception("duplicate key"))

    with pytest.raises(IntegrityError):
        write_durably(write, budget_seconds=120, sleep=lambda _s: None)
    assert calls == [1]


def test_a_log_that_is_down_with_the_store_does_not_end_the_retries(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Dagster's event log on the same stopped Postgres: ``context.log`` raises while the
    answer waits; the answer is still kept once the database is back."""
    failures = [outage(), outage()]

    def write() -> str:
        if failures:
            raise failures.pop()
        return "kept"

    def log_to_the_dead_database(_exc: BaseException, _wait: float) -> None:
        raise Exception("too many retries for DB connection")

    result = write_durably(
        write, budget_seconds=120, on_retry=log_to_the_dead_database, sleep=lambda _s: None
    )
    assert result == "kept"
    assert caplog.text.count("reporting it failed too (Exception)") == 2
