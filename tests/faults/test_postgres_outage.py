"""Postgres stopped for 60 s while agent calls finish, both stores on it, on a private cluster
(``pg_createcluster``, port 5439) so the shared server is untouched. The answers that arrive
during the outage are kept, each agent is called once, and the API answers 503 fast."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.faults.conftest import deployment_env, postgres_stores
from tests.faults.deployment import deployed, dump, recover, steps, wait_for
from tests.orchestration_defs.calls_server import HOLD, CallsServer
from tests.pg import IN_CI

pytestmark = [pytest.mark.fault, pytest.mark.slow, pytest.mark.postgres]

CLUSTER, PORT = "batonfault", 5439
OUTAGE_SECONDS = 60.0
RUNS = 3


def _version() -> str:
    versions = sorted(Path("/etc/postgresql").iterdir()) if Path("/etc/postgresql").exists() else []
    if not versions or shutil.which("pg_createcluster") is None:
        message = "needs Debian's postgresql-common (pg_createcluster) for a private cluster"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return versions[-1].name


def _ctl(version: str, action: str) -> None:
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, CLUSTER, action],
        check=True,
        capture_output=True,
        timeout=120,
    )


@pytest.fixture
def cluster() -> Iterator[tuple[str, str]]:
    """(version, admin URL) of a new cluster on port 5439, trust auth; dropped afterwards."""
    version = _version()
    drop = ["pg_dropcluster", "--stop", version, CLUSTER]
    subprocess.run(drop, capture_output=True, timeout=120)  # a leftover of an aborted run
    create = ["pg_createcluster", version, CLUSTER, "--port", str(PORT)]
    create += ["--", "--auth-local=trust", "--auth-host=trust"]
    subprocess.run(create, check=True, capture_output=True, timeout=120)
    try:
        _ctl(version, "start")
        yield version, f"postgresql+psycopg2://postgres@127.0.0.1:{PORT}/postgres"
    finally:
        subprocess.run(drop, capture_output=True, timeout=120)


def _timed_get(url: str, **kwargs: object) -> tuple[int, float]:
    started = time.monotonic()
    answer = httpx.get(url, timeout=30, **kwargs)  # type: ignore[arg-type]
    return answer.status_code, time.monotonic() - started


def test_postgres_stopped_60_s_while_calls_finish_keeps_every_answer(
    cluster: tuple[str, str], library: Path, agent: CallsServer, tmp_path: Path
) -> None:
    version, admin_url = cluster
    agent.script.extend([HOLD] * RUNS)  # every call answers once the database is down
    with (
        postgres_stores(admin_url) as stores,
        deployed(deployment_env(library, agent, *stores), tmp_path) as d,
    ):
        ops = d.token("ops", "operator")
        runs = [d.launch(ops, "fault-mid") for _ in range(RUNS)]
        wait_for("the agent calls", lambda: len(agent.calls) == RUNS)
        _ctl(version, "stop")
        down_at = time.monotonic()
        agent.released.set()  # the answers arrive while Postgres is down
        time.sleep(5)
        # The first probe of a process may take up to its first deadline (30 s: it also opens
        # Dagster's instance); the next ones answer within the steady deadline (1.5 s).
        first, first_seconds = _timed_get(f"{d.api}/readyz")
        ready, ready_seconds = _timed_get(f"{d.api}/readyz")
        listed, listed_seconds = _timed_get(f"{d.api}/api/v1/runs", headers=ops)
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
        _ctl(version, "start")
        up_at = time.monotonic()
        paths = {recover(d, r, "work") for r in runs if d.status(r) != "completed"}
        for run_id in runs:
            d.wait_status(run_id, "completed")
        recovery = time.monotonic() - up_at
        assert all(steps(d.store, r) == {"work": "completed"} for r in runs)
    print(
        f"\n/readyz {first} in {first_seconds:.2f} s, then {ready} in {ready_seconds:.2f} s, "
        f"/api/v1/runs {listed} in "
        f"{listed_seconds:.2f} s during the outage; all {RUNS} runs completed "
        f"{recovery:.1f} s after Postgres was back ({paths or 'kept'}); "
        f"agent calls {len(agent.calls)}"
    )
    assert (first, ready, listed) == (503, 503, 503)
    # Answered, not hung (loose on purpose: a loaded machine).
    assert first_seconds < 35 and ready_seconds < 10 and listed_seconds < 10
    once = sorted(f"{r}:work:1" for r in runs)
    assert sorted(agent.keys) == once, dump(agent.keys)
