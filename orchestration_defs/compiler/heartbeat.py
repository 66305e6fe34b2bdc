"""A running step's lease: renewed from a small thread while its agent call runs.

One UPDATE every ``every`` seconds and nothing else: a call shorter than that writes nothing
here (the lease started with the attempt, in the transaction that started it). A lost lease
(the reaper failed the attempt, or a retry took it over) stops the renewals; the call's own
result is then refused by the step's state machine.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from baton.store.service import RunStore
from baton.store.steps import StepsRepository

log = logging.getLogger(__name__)


def renew(store: RunStore, run_id: uuid.UUID, step_id: str, attempt: int, owner: str) -> bool:
    """One renewal; False once the attempt is no longer this owner's running one."""
    with store.session() as s:
        return StepsRepository(s).heartbeat(run_id, step_id, attempt=attempt, owner=owner)


@contextmanager
def heartbeat(
    store: RunStore, run_id: uuid.UUID, step_id: str, attempt: int, owner: str, every: float
) -> Iterator[None]:
    """Renew the attempt's lease every ``every`` seconds until the block ends."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            try:
                if not renew(store, run_id, step_id, attempt, owner):
                    log.warning("step %s attempt %s: lease lost, renewals stop", step_id, attempt)
                    return
            except Exception:  # a database blip: the next beat tries again; the lease is long
                log.warning("step %s: heartbeat failed", step_id, exc_info=True)

    # A daemon thread: it must never keep a run worker alive.
    thread = threading.Thread(target=beat, daemon=True, name=f"heartbeat-{step_id}")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=every)
