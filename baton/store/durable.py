"""Writes that must outlast a database outage: retried with backoff for a bounded time.

An agent's answer has been paid for once the call returns; losing it to a restarting database
would make the step call the agent again. Only connection-level failures are retried: a write
the database refuses (a constraint, an illegal transition) fails at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

T = TypeVar("T")

FIRST_DELAY_SECONDS = 0.5
MAX_DELAY_SECONDS = 8.0


def is_outage(exc: BaseException) -> bool:
    """True for a lost or refused connection (the database is down or restarting)."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def write_durably(
    write: Callable[[], T],
    *,
    budget_seconds: float,
    on_retry: Callable[[BaseException, float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``write()``, retried on outages with doubling delays until ``budget_seconds`` pass.

    ``on_retry(error, delay)`` is told of each retry (to log it).

    Raises:
        Exception: the last outage once the budget is spent, or any other error at once.
    """
    deadline = time.monotonic() + budget_seconds
    delay = FIRST_DELAY_SECONDS
    while True:
        try:
            return write()
        except Exception as exc:
            left = deadline - time.monotonic()
            if not is_outage(exc) or left <= 0:
                raise
            wait = min(delay, left)
            if on_retry is not None:
                on_retry(exc, wait)
            sleep(wait)
            delay = min(delay * 2, MAX_DELAY_SECONDS)
