"""Readiness probes that answer within a deadline, whatever the store they ask does.

A store that is down can hang rather than refuse: a Postgres behind a cut network path (or a
proxy that stopped forwarding) leaves a connect or a query waiting for minutes. `/readyz` must
still answer 503 quickly, so each check runs in its own thread and is waited for at most
``DEADLINE_SECONDS`` (the first check of a process, which also opens Dagster's instance,
``FIRST_DEADLINE_SECONDS``); a check still running is not started again, so a hung store costs one
thread, not one per request. Baton's own database is asked over a fresh connection with short
connect and statement timeouts, so a dead pooled connection cannot stall it either.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from baton.secrets import Masker

log = logging.getLogger(__name__)
_MASKER = Masker()  # key-like strings and user:password@ of URLs
T = TypeVar("T")

DEADLINE_SECONDS = 1.5
FIRST_DEADLINE_SECONDS = 30.0
CONNECT_TIMEOUT_SECONDS = 1


class DeadlineProbe:
    """Run ``check`` in a thread; its state ("ok", "timeout ...", "unreachable (...)")."""

    def __init__(
        self, name: str, check: Callable[[], object], deadline: float, first_deadline: float
    ) -> None:
        self.name = name
        self.check = check
        self.deadline = deadline
        self.first_deadline = first_deadline
        self._lock = threading.Lock()
        self._pending: Future[object] | None = None
        self._answered = False

    def __call__(self) -> str:
        # The very first check also opens what it checks (Dagster's instance: imports and
        # storage set-up, seconds on a busy machine): it gets longer, once.
        deadline = self.deadline if self._answered else self.first_deadline
        try:
            self._current().result(timeout=deadline)
        except FutureTimeout:
            log.warning("readiness check %s: no answer in %.1f s", self.name, deadline)
            return f"timeout (no answer in {deadline:g} s)"
        except Exception as exc:
            # The exception text may carry a URL with a password: answer only its type, and
            # log the text with passwords masked.
            log.warning("readiness check %s failed: %s", self.name, _MASKER.text(str(exc)))
            return f"unreachable ({type(exc).__name__})"
        return "ok"

    def _current(self) -> Future[object]:
        """The check in flight, or a new one if the last has ended."""
        with self._lock:
            if self._pending is None or self._pending.done():
                future: Future[object] = Future()
                thread = threading.Thread(
                    target=self._run, args=(future,), name=f"readyz-{self.name}", daemon=True
                )
                thread.start()
                self._pending = future
            return self._pending

    def _run(self, future: Future[object]) -> None:
        try:
            future.set_result(self.check())
        except BaseException as exc:
            future.set_exception(exc)
        finally:
            self._answered = True


_probes: weakref.WeakKeyDictionary[Any, DeadlineProbe] = weakref.WeakKeyDictionary()
_probes_lock = threading.Lock()


def probe_for(owner: T, name: str, check: Callable[[T], object]) -> DeadlineProbe:
    """The one probe of ``owner`` (a store, a gateway), so its checks never pile up.

    The probe holds ``owner`` weakly: it lives as long as the app that holds the owner.
    """
    with _probes_lock:
        probe = _probes.get(owner)
        if probe is None:
            ref = weakref.ref(owner)
            probe = DeadlineProbe(
                name, lambda: check(_alive(ref)), DEADLINE_SECONDS, FIRST_DEADLINE_SECONDS
            )
            _probes[owner] = probe
        return probe


def _alive(ref: weakref.ref[T]) -> T:
    owner = ref()
    if owner is None:
        raise RuntimeError("the checked object is gone")
    return owner


def ping_database(url: str) -> None:
    """``SELECT 1`` over a new connection that gives up after about a second."""
    with _probe_engine(url).connect() as conn:
        conn.execute(text("SELECT 1"))


@lru_cache(maxsize=8)
def _probe_engine(url: str) -> Engine:
    # NullPool: every check opens a connection, so it tests the path to the server now, not a
    # pooled connection that may hang on a dead socket.
    if make_url(url).get_backend_name() == "sqlite":
        args: dict[str, Any] = {"timeout": CONNECT_TIMEOUT_SECONDS}
    else:
        statement_ms = int(DEADLINE_SECONDS * 1000)
        args = {
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            "options": f"-c statement_timeout={statement_ms}",
        }
    return create_engine(url, poolclass=NullPool, connect_args=args)
