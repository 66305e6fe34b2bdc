"""Three re-executions "from failure" of one failed run launched at once: the interrupted call
is presented under one idempotency key, at most one completion lands, the run ends
consistent. The agent (the shipped `publisher`) is a local server that holds the calls until all
are in flight, so they really overlap; each re-execution is a process of its own."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance, build_reconstructable_job, execute_job
from dagster._serdes import serialize_value

from baton.store.service import RunStore
from tests.orchestration_defs.calls_server import HOLD, CallsServer
from tests.orchestration_defs.test_call_identity import ONCE, _register, _step

pytestmark = [pytest.mark.fault, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[CallsServer]:
    with CallsServer([400, HOLD, HOLD, HOLD]).running() as running:
        monkeypatch.setenv("BATON_PUBLISH_URL", running.url)
        monkeypatch.setenv("BATON_PUBLISH_KEY", "publish-key")
        yield running


def test_three_concurrent_reexecutions_call_under_one_key_and_complete_once(
    dagster_instance: DagsterInstance, server: CallsServer
) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    _register(ONCE, url)
    job = build_reconstructable_job(
        "tests.orchestration_defs.test_call_identity",
        "publisher_job",
        reconstructable_args=(ONCE, url),  # type: ignore[arg-type]
    )
    with execute_job(job, dagster_instance, run_config={"inputs": {}}) as result:
        assert not result.success
        parent = result.run_id
    ref = serialize_value(dagster_instance.get_ref())
    command = [sys.executable, "-m", "tests.faults.reexecute_worker", ref, parent, url]
    # Three processes at once, as three operators pressing "re-execute from failure" would.
    workers = [
        subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True) for _ in range(3)
    ]

    # Answer once each re-execution either reached the agent or stopped (a superseded one).
    def settled() -> bool:
        return len(server.calls) - 1 + sum(w.poll() is not None for w in workers) >= 3

    deadline = time.monotonic() + 120
    while not settled() and time.monotonic() < deadline:
        time.sleep(0.2)
    server.released.set()
    outcomes = [w.communicate(timeout=300)[0].strip() for w in workers]

    [run] = RunStore(url).list_runs()
    detail = RunStore(url).run_detail(run.id)
    assert set(server.keys) == {f"{run.id}:publish:1"}, server.keys  # one logical call
    assert 2 <= len(server.calls) <= 4
    completions = [e for e in detail.events if e.type == "step.completed"]
    assert len(completions) == 1, [e.type for e in detail.events]
    assert run.status == "completed"
    _, step = _step(url)
    assert (step.status, step.call_number) == ("completed", 1)
    # The row keeps the output of the attempt whose completion landed.
    assert step.output in [{"ok": True, "call": n} for n in range(2, 5)], step.output
    assert outcomes.count("success") >= 1, outcomes
    print(f"\nagent calls {len(server.calls)}, outcomes {outcomes}")
