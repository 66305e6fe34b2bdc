"""A running step's heartbeat thread: renews its own attempt's lease, stops once it lost it."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import pytest

from baton.store.service import RunStore, StepPlan
from orchestration_defs.compiler import heartbeat as module
from orchestration_defs.compiler.heartbeat import heartbeat
from tests.helpers import compile_text

FLOW = """
slug: beat
name: Beat
version: 1
steps:
  - id: a
    agent: echo
"""
BOUND = 60.0


def _wait(what: str, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + BOUND
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.02)


def _running(url: str) -> tuple[RunStore, uuid.UUID, int]:
    compile_text(FLOW, url)
    store = RunStore(url)
    run_id = store.create_run(organization="global", slug="beat", version=1, inputs={})
    store.begin_segment(
        run_id=run_id, dagster_run_id="dag-1", steps=[StepPlan("a", "agent", "echo")]
    )
    attempt = store.start_step(run_id, "a", input={}, dagster_run_id="dag-1")
    return store, run_id, attempt


def _beat_at(store: RunStore, run_id: uuid.UUID) -> object:
    return store.run_detail(run_id).steps[0].heartbeat_at


def test_the_lease_is_renewed_while_the_block_runs(db_url: str) -> None:
    store, run_id, attempt = _running(db_url)
    first = _beat_at(store, run_id)
    with heartbeat(store, run_id, "a", attempt, "dag-1", every=0.05):
        _wait("a renewal", lambda: _beat_at(store, run_id) != first)
    after = _beat_at(store, run_id)
    time.sleep(0.2)  # several intervals: nothing renews once the block ended
    assert _beat_at(store, run_id) == after


def test_renewals_stop_once_the_attempt_is_not_ours(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, run_id, attempt = _running(db_url)
    calls: list[bool] = []
    stopped = threading.Event()
    real = module.renew

    def counted(*args: object) -> bool:
        result = real(*args)  # type: ignore[arg-type]
        calls.append(result)
        if not result:
            stopped.set()
        return result

    monkeypatch.setattr(module, "renew", counted)
    # Another worker's attempt: this owner's renewals match no row.
    store.start_step(run_id, "a", input={}, dagster_run_id="dag-2")
    with heartbeat(store, run_id, "a", attempt, "dag-1", every=0.05):
        _wait("the lost lease", stopped.is_set)
        time.sleep(0.2)
    assert calls == [False]  # one try, then the thread ended
