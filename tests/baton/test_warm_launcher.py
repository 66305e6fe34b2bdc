"""WarmRunLauncher on a real instance: runs forked from the zygote through a real code server.

Each test uses a real Dagster instance in a temp folder (SQLite, and Postgres storage through
dagster-postgres) whose ``run_launcher`` is the warm launcher, a code server loading
``tests/baton/warm_fixtures/jobs.py``, and the real zygote process; nothing is faked.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus, instance_for_test
from dagster._core.launcher import WorkerStatus
from dagster._core.storage.tags import GRPC_INFO_TAG
from dagster._core.workspace.context import BaseWorkspaceRequestContext
from dagster._daemon.monitoring.run_monitoring import monitor_started_run
from dagster._serdes import serialize_value

from baton.settings import PACKAGE_ROOT
from baton.warm_launcher import WORKER_TAG, WarmRunLauncher, client, protocol
from tests.baton.warm_fixtures.launching import create_run, workspace

pytestmark = pytest.mark.slow

# A short idle exit, so a zygote no test process holds a lease on goes away quickly.
LAUNCHER = {
    "module": "baton.warm_launcher",
    "class": "WarmRunLauncher",
    "config": {"idle_exit_seconds": 2},
}
TIMEOUT = 60.0


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def instance(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DagsterInstance]:
    """A real instance using the warm launcher; its zygote is stopped afterwards."""
    monkeypatch.setenv("WARM_TEST_OUT", str(tmp_path / "out"))
    overrides: dict[str, object] = {"run_launcher": LAUNCHER}
    if request.param == "postgres":
        url = request.getfixturevalue("pg_url")
        overrides["storage"] = {"postgres": {"postgres_url": url.replace("+psycopg2", "")}}
    home = tmp_path / "dh"
    home.mkdir()
    with instance_for_test(overrides=overrides, temp_dir=str(home)) as inst:
        try:
            yield inst
        finally:
            client.stop(home)


@pytest.fixture
def ws(instance: DagsterInstance) -> Iterator[BaseWorkspaceRequestContext]:
    with workspace(instance) as context:
        yield context


def _wait(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _finished(instance: DagsterInstance, run_id: str) -> DagsterRunStatus:
    _wait(lambda: _run(instance, run_id).is_finished, f"run {run_id} to finish")
    return _run(instance, run_id).status


def _run(instance: DagsterInstance, run_id: str):  # type: ignore[no-untyped-def]
    run = instance.get_run_by_id(run_id)
    assert run is not None
    return run


def _worker_pid(instance: DagsterInstance, run_id: str) -> int:
    _wait(lambda: WORKER_TAG in _run(instance, run_id).tags, "the run worker tag")
    return int(json.loads(_run(instance, run_id).tags[WORKER_TAG])["pid"])


def _marker(run_id: str, name: str) -> Path:
    return Path(os.environ["WARM_TEST_OUT"]) / f"{run_id}.{name}"


def _launch(instance: DagsterInstance, ws: BaseWorkspaceRequestContext, job: str) -> str:
    run_id = create_run(instance, ws, job)
    instance.launch_run(run_id, ws)
    return run_id


def test_a_run_completes_in_a_forked_worker(
    instance: DagsterInstance, ws: BaseWorkspaceRequestContext
) -> None:
    assert isinstance(instance.run_launcher, WarmRunLauncher)
    run_id = _launch(instance, ws, "quick_job")

    assert _finished(instance, run_id) == DagsterRunStatus.SUCCESS
    pid = _worker_pid(instance, run_id)
    zygote = client.ping(Path(instance.root_directory))
    assert zygote is not None and pid not in (os.getpid(), zygote["pid"])
    # The op ran in the forked worker, with the launcher's environment (WARM_TEST_OUT).
    assert _marker(run_id, "quick").read_text().split()[0] == str(pid)
    assert GRPC_INFO_TAG not in _run(instance, run_id).tags
    log = Path(instance.root_directory) / "logs" / "run-workers" / f"{run_id}.log"
    assert "RUN_SUCCESS" in log.read_text()
    # Reaped by the zygote: no zombie left behind.
    _wait(lambda: not Path(f"/proc/{pid}").exists(), "the worker to be reaped", 10)


def test_the_worker_survives_the_launching_process(
    instance: DagsterInstance, tmp_path: Path
) -> None:
    """As ``baton run`` does: launch, then exit at once; the run still completes."""
    script = """
import sys
from dagster import DagsterInstance
from dagster._serdes import deserialize_value
from dagster._core.instance import InstanceRef
from tests.baton.warm_fixtures.launching import create_run, workspace
instance = DagsterInstance.from_ref(deserialize_value(sys.argv[1], InstanceRef))
with workspace(instance) as ws:
    run_id = create_run(instance, ws, "linger_job")
    instance.launch_run(run_id, ws)
    open(sys.argv[2], "w").write(run_id)
"""
    env = {**os.environ, "WARM_TEST_LINGER": "120", "PYTHONPATH": str(PACKAGE_ROOT)}
    out = tmp_path / "run_id"
    subprocess.run(
        [sys.executable, "-c", script, serialize_value(instance.get_ref()), str(out)],
        env=env,
        cwd=PACKAGE_ROOT,
        capture_output=True,
        timeout=120,
        check=True,
    )
    run_id = out.read_text()
    assert not _marker(run_id, "done").exists()  # the launcher exited while the op still ran
    _marker(run_id, "release").write_text("")
    assert _finished(instance, run_id) == DagsterRunStatus.SUCCESS
    assert _marker(run_id, "done").exists()
    # Its lease holder gone and its worker ended, the zygote leaves no process behind.
    _wait(lambda: client.ping(Path(instance.root_directory)) is None, "the zygote to exit", 20)


def test_terminate_stops_the_worker(
    instance: DagsterInstance, ws: BaseWorkspaceRequestContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WARM_TEST_LINGER", "60")
    run_id = _launch(instance, ws, "linger_job")
    _wait(_marker(run_id, "started").exists, "the op to start")
    pid = _worker_pid(instance, run_id)

    assert instance.run_launcher.terminate(run_id) is True

    assert _finished(instance, run_id) == DagsterRunStatus.CANCELED
    assert not _marker(run_id, "done").exists()
    _wait(lambda: not Path(f"/proc/{pid}").exists(), "the worker to be gone", 10)
    assert instance.run_launcher.terminate(run_id) is False  # already finished


def test_a_killed_worker_is_reported_and_its_run_failed_by_monitoring(
    instance: DagsterInstance, ws: BaseWorkspaceRequestContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WARM_TEST_LINGER", "60")
    run_id = _launch(instance, ws, "linger_job")
    _wait(_marker(run_id, "started").exists, "the op to start")
    launcher = instance.run_launcher
    assert launcher.supports_check_run_worker_health
    assert not launcher.supports_resume_run
    assert launcher.check_run_worker_health(_run(instance, run_id)).status == WorkerStatus.RUNNING

    os.kill(_worker_pid(instance, run_id), signal.SIGKILL)

    _wait(
        lambda: (
            launcher.check_run_worker_health(_run(instance, run_id)).status == WorkerStatus.FAILED
        ),
        "the dead worker to be reported",
        10,
    )
    # Dagster's own run monitoring (the daemon's loop body) then fails the run.
    record = instance.get_run_record_by_id(run_id)
    assert record is not None and record.dagster_run.status == DagsterRunStatus.STARTED
    monitor_started_run(instance, ws, record, logging.getLogger("test"))
    assert _run(instance, run_id).status == DagsterRunStatus.FAILURE


def test_a_killed_zygote_is_started_again(
    instance: DagsterInstance, ws: BaseWorkspaceRequestContext
) -> None:
    home = Path(instance.root_directory)
    first = _launch(instance, ws, "quick_job")
    assert _finished(instance, first) == DagsterRunStatus.SUCCESS
    old = client.ping(home)
    assert old is not None

    os.kill(int(old["pid"]), signal.SIGKILL)
    _wait(lambda: client.ping(home) is None, "the zygote to be gone", 10)

    second = _launch(instance, ws, "quick_job")
    assert _finished(instance, second) == DagsterRunStatus.SUCCESS
    new = client.ping(home)
    assert new is not None and new["pid"] != old["pid"]
    assert WORKER_TAG in _run(instance, second).tags


def test_without_a_usable_zygote_it_launches_as_the_default_launcher(
    instance: DagsterInstance, ws: BaseWorkspaceRequestContext, caplog: pytest.LogCaptureFixture
) -> None:
    home = Path(instance.root_directory)
    client.stop(home)
    _wait(lambda: client.ping(home) is None, "the zygote to be gone", 10)
    # A folder where the socket belongs: the zygote cannot bind, so none can start.
    blocker = protocol.socket_path(home)
    blocker.unlink(missing_ok=True)
    blocker.mkdir()
    try:
        with caplog.at_level(logging.WARNING, logger="baton.warm_launcher.launcher"):
            run_id = _launch(instance, ws, "quick_job")
        assert _finished(instance, run_id) == DagsterRunStatus.SUCCESS
    finally:
        blocker.rmdir()
    tags = _run(instance, run_id).tags
    assert GRPC_INFO_TAG in tags and WORKER_TAG not in tags
    assert "launching without the zygote" in caplog.text
    health = instance.run_launcher.check_run_worker_health(_run(instance, run_id))
    assert health.status == WorkerStatus.RUNNING  # nothing to watch; not reported as dead
