"""Writes that must outlast a database outage: retried with backoff for a bounded time.

An agent's answer has been paid for once the call returns; losing it to a restarting database
would make the step call the agent again. Only connection-level failures are retried: a write
the database refuses (a constraint, an illegal transition) fails at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

T = TypeVar("T")
log = logging.getLogger(__name__)

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

    ``on_retry(error, delay)`` is told of each retry (to log it); its own failure never ends
    the retries: a run's log (Dagster's event log) may live on the unreachable database too.

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
                _tell(on_retry, exc, wait)
            sleep(wait)
            delay = min(delay * 2, MAX_DELAY_SECONDS)


def _tell(
    on_retry: Callable[[BaseException, float], None], exc: BaseException, wait: float
) -> None:
    try:
        on_retry(exc, wait)
    except Exception as failed:  # the log is down with the store: say it where we can
        log.warning(
            "store unreachable (%s), next try in %.1f s; reporting it failed too (%s)",
            type(exc).__name__,
            wait,
            type(failed).__name__,
        )
