"""kill -9 of a run worker in the middle of a step: the reaper fails the step, a retry works.

Real processes: the segment runs in a child Python (``crash_worker``) against a real Dagster
instance and real SQLite / Postgres; its agent is a real HTTP server on 127.0.0.1 that holds
step ``b``'s call open until the test kills the worker. No launcher watches the child, so
Dagster keeps showing the run STARTED: the step's expired lease is what gives it away.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from baton.lifecycle import Lifecycle
from baton.reaper import Reaped, dagster_owner_statuses, end_stale_owner, reap
from baton.store.service import RunStore
from orchestration_defs.compiler.resources import BatonStoreResource
from tests.baton.lifecycle_world import Recorder
from tests.fakes.http import FakeServer, Reply, Request
from tests.helpers import compile_text
from tests.orchestration_defs.crash_worker import FLOW, PostingAgent

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
LEASE = 10.0  # seconds; the worker renews every 0.2 s
BOUND = 120.0  # how long the test waits for any one thing before it gives up


def _wait(what: str, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + BOUND
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.1)


def _step(url: str, run_id: uuid.UUID, step_id: str) -> tuple[str, object, object]:
    row = next(s for s in RunStore(url).run_detail(run_id).steps if s.step_id == step_id)
    return row.status, row.started_at, row.heartbeat_at


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_kill_9_of_a_run_worker_mid_step(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = request.getfixturevalue("sqlite_db" if backend == "sqlite" else "pg_db")
    _, job = compile_text(FLOW, url)
    store = RunStore(url)
    run_id = store.create_run(organization="global", slug="crash", version=1, inputs={})
    release = threading.Event()  # b's first call hangs until the test is done with the worker

    def b_answer(_request: Request) -> Reply:
        release.wait(BOUND)
        return Reply(200, {"b": "done"})

    with FakeServer() as server:
        server.route("POST", "/a", lambda _r: Reply(200, {"a": "done"}))
        server.route("POST", "/b", b_answer)
        env = {
            **os.environ,
            "BATON_SENSORS__HEARTBEAT_SECONDS": "0.2",
            "PYTHONPATH": str(REPO),
        }
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.orchestration_defs.crash_worker",
                str(tmp_path),
                url,
                server.url,
                str(run_id),
            ],
            cwd=REPO,
            env=env,
        )
        try:
            _wait("b's agent call", lambda: len(server.calls("POST", "/b")) == 1)
            # Renewals happen while the call runs, and a live step is never reaped.
            _wait(
                "a renewed lease", lambda: _step(url, run_id, "b")[2] != _step(url, run_id, "b")[1]
            )
            instance = DagsterInstance.local_temp(str(tmp_path))
            owners = dagster_owner_statuses(instance)
            assert reap(store, owners, lease_seconds=LEASE) == []

            worker.send_signal(signal.SIGKILL)
            assert worker.wait(BOUND) == -signal.SIGKILL
            reaped: list[Reaped] = []

            def reaped_now() -> bool:
                reaped.extend(reap(store, owners, lease_seconds=LEASE))
                return bool(reaped)

            _wait("the reaper", reaped_now)
        finally:
            release.set()
            if worker.poll() is None:
                worker.kill()

        (orphan,) = reaped
        assert (orphan.run_id, orphan.step_id, orphan.owner_status) == (run_id, "b", "STARTED")
        assert "no heartbeat" in orphan.reason
        assert _step(url, run_id, "a")[0] == "completed" and _step(url, run_id, "b")[0] == "failed"
        assert store.get_run(run_id).status == "failed"
        # The retry the API answered 409 to is accepted, and its segment does only b again.
        recorder = Recorder()
        launched = Lifecycle(store, recorder, via="api").retry_step(run_id, "b", by="ops")
        assert launched.error is None
        (segment,) = recorder.launches
        result = job.execute_in_process(
            run_config=segment.run_config,
            tags=segment.all_tags,
            instance=instance,
            resources={
                "baton_store": BatonStoreResource(database_url=url),
                "agent_echo": PostingAgent(base_url=server.url),
            },
            raise_on_error=False,
        )
        assert result.success
        assert store.get_run(run_id).status == "completed"
        assert len(server.calls("POST", "/a")) == 1  # the completed step was not re-run
        # The killed call and the retry: an orphan retried without a new input is the same
        # logical call (call 1), so the agent sees one key twice and can dedupe the work.
        b_calls = server.calls("POST", "/b")
        assert [c.headers.get("idempotency-key") for c in b_calls] == [f"{run_id}:b:1"] * 2
        assert [c.json()["attempt"] for c in b_calls] == [1, 2]
        (a_call,) = server.calls("POST", "/a")
        assert a_call.headers.get("idempotency-key") == f"{run_id}:a:1"
        # The killed segment shows STARTED until the reaper sensor records its end.
        assert end_stale_owner(instance, orphan.owner, orphan.reason)
        stale = instance.get_run_by_id(orphan.owner)
        assert stale is not None and stale.status == DagsterRunStatus.FAILURE
