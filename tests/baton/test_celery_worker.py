"""Steps on Celery workers through dagster-celery, with the RabbitMQ broker of this machine.

The deployment test starts two real ``baton celery-worker`` processes (w1, w2, one step at a
time each) on a queue of its own, launches an orchestration through a real code server and run
worker (``SegmentLauncher``, as the API does), and reads from Dagster's events which worker ran
each step. The agent server holds the first call until a second one arrives: with one slot per
worker, the second call can only come from the other worker, so the run must use both. Then a
checkpoint pauses the run, a decision resumes it, and the resumed steps run on the workers too.
The broker (BATON_TEST_CELERY_BROKER, default RabbitMQ at 127.0.0.1:5672) is required in CI,
like Postgres; elsewhere the test skips when it does not answer.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance, DagsterRunStatus

from baton.celery_worker import executor_config, worker_argv
from baton.dagster_home import ensure_dagster_home
from baton.launch import SegmentLauncher
from baton.lifecycle import Lifecycle
from baton.settings import ExecutionSettings, get_settings
from baton.store.service import RunStore
from tests.checkpoint_helpers import pending, users
from tests.fakes.http import FakeServer, Reply, Request
from tests.helpers import compile_text
from tests.pg import IN_CI

REPO = Path(__file__).resolve().parents[2]
BROKER = os.environ.get("BATON_TEST_CELERY_BROKER", "pyamqp://guest:guest@127.0.0.1:5672//")
BOUND = 240.0  # how long the test waits for any one thing before it gives up (loaded machine)
HOLD = 20.0  # the first agent call waits this long at most for a second one (agent limit: 30 s)

FLOW = """
slug: spread
name: Spread
version: 1
steps:
  - {id: a, agent: publisher, with: {step: a}}
  - {id: b, agent: publisher, with: {step: b}}
  - {id: c, agent: publisher, with: {step: c}}
  - {id: d, agent: publisher, with: {step: d}}
  - id: review
    needs: [a, b, c, d]
    checkpoint:
      prompt: "Go on?"
      decisions: [continue, abort]
  - {id: e, needs: [review], agent: publisher, with: {step: e}}
  - {id: f, needs: [review], agent: publisher, with: {step: f}}
outputs:
  e: "{{ steps.e.output }}"
"""


def test_the_executor_config_names_broker_backend_and_queue() -> None:
    settings = ExecutionSettings(
        executor="celery", celery_broker="amqp://u:pw@mq:5672//", celery_queue="steps"
    )
    assert executor_config(settings) == {
        "broker": "amqp://u:pw@mq:5672//",
        "backend": "rpc://",
        "config_source": {"task_default_queue": "steps"},
    }
    argv = worker_argv(settings, name="w1@%h", concurrency=2, pool="solo", loglevel="INFO")
    assert "--queues=steps" in argv and "--hostname=w1@%h" in argv and "--concurrency=2" in argv
    assert "--prefetch-multiplier=1" in argv


def test_the_broker_url_is_a_secret_kept_out_of_settings_dumps_and_the_job(
    monkeypatch: pytest.MonkeyPatch, sqlite_db: str
) -> None:
    monkeypatch.setenv("BATON_EXECUTION__EXECUTOR", "celery")
    monkeypatch.setenv("BATON_EXECUTION__CELERY_BROKER", "amqp://u:s3cr3t-broker@mq//")
    get_settings.cache_clear()
    settings = get_settings()
    assert "s3cr3t-broker" not in repr(settings) and "s3cr3t-broker" not in str(
        settings.model_dump()
    )
    _, job = compile_text(FLOW.replace("publisher", "echo"), sqlite_db)
    assert job.executor_def.name == "celery"
    from dagster._serdes import serialize_value

    # The snapshot is what Dagster stores with every run and shows in the UI.
    assert "s3cr3t-broker" not in serialize_value(job.get_job_snapshot())


# -- the deployment -------------------------------------------------------------------------


class HoldingAgent:
    """The agent server's /publish: records each call; the first waits for a second one."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self._arrived = threading.Condition()

    def __call__(self, request: Request) -> Reply:
        step = request.json()["step"]
        with self._arrived:
            self.calls.append(step)
            self._arrived.notify_all()
            self._arrived.wait_for(lambda: len(self.calls) >= 2, timeout=HOLD)
        return Reply(200, {"published": step})


class Workers:
    """Two ``baton celery-worker`` processes, each in its own process group, logging to files."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.logs = {name: tmp_path / f"celery-{name}.log" for name in ("w1", "w2")}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        for name, log in self.logs.items():
            # One slot each (-c 1): a held agent call keeps its worker busy.
            argv = ["celery-worker", "-n", f"{name}@%h", "-c", "1"]
            with log.open("wb") as out:
                self.procs[name] = subprocess.Popen(
                    [sys.executable, "-m", "baton.cli.main", *argv],
                    env=env,
                    cwd=REPO,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )

    def tail(self) -> str:
        return "\n".join(f"--- {n}\n{p.read_text()[-3000:]}" for n, p in self.logs.items())

    def wait_ready(self) -> None:
        for name, log in self.logs.items():

            def ready(log: Path = log) -> bool:
                return " ready." in log.read_text()

            _wait(f"worker {name} to be ready", ready, self)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


def _wait(what: str, done: Callable[[], bool], workers: Workers | None = None) -> None:
    deadline = time.monotonic() + BOUND
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}\n{workers.tail() if workers else ''}")
        time.sleep(0.2)


def _require_broker() -> None:
    """The broker must answer: in CI a missing one fails the test, elsewhere it skips it."""
    from kombu.utils.url import url_to_parts

    parts = url_to_parts(BROKER)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), 5).close()
    except OSError as exc:
        if IN_CI:
            pytest.fail(f"the Celery broker at {parts.hostname}:{parts.port} is required: {exc}")
        pytest.skip(f"no Celery broker at {parts.hostname}:{parts.port} ({exc})")


def _instance_yaml(home: Path, db_url: str) -> None:
    """Dagster's instance for the test: storage beside Baton's tables, the default launcher."""
    config: dict[str, object] = {
        "telemetry": {"enabled": False},
        "run_launcher": {
            "module": "dagster._core.launcher.default_run_launcher",
            "class": "DefaultRunLauncher",
        },
    }
    if db_url.startswith("postgresql"):
        config["storage"] = {"postgres": {"postgres_url": db_url.replace("+psycopg2", "")}}
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))


@pytest.fixture
def deployment(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, FakeServer, HoldingAgent, Workers]]:
    _require_broker()
    url = request.getfixturevalue("sqlite_db" if request.param == "sqlite" else "pg_db")
    library = tmp_path / "library"
    library.mkdir()
    (library / "spread.yaml").write_text(FLOW)
    agent = HoldingAgent()
    with FakeServer() as server:
        server.route("POST", "/publish", agent)
        env = {
            "BATON_DATABASE_URL": url,
            "BATON_LIBRARY_DIR": str(library),
            "BATON_EXECUTION__EXECUTOR": "celery",
            "BATON_EXECUTION__CELERY_BROKER": BROKER,
            # A queue of this test's own: no stale worker or message of another run interferes.
            "BATON_EXECUTION__CELERY_QUEUE": f"baton-test-{uuid.uuid4().hex[:12]}",
            "BATON_PUBLISH_URL": server.url,
            "PYTHONPATH": str(REPO),
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        _instance_yaml(get_settings().dagster_home, url)
        workers = Workers(tmp_path, dict(os.environ))
        try:
            workers.wait_ready()
            yield url, server, agent, workers
        finally:
            workers.stop()


def _finished(instance: DagsterInstance, dagster_run_id: str, workers: Workers) -> None:
    def done() -> bool:
        run = instance.get_run_by_id(dagster_run_id)
        return run is not None and run.is_finished

    _wait(f"Dagster run {dagster_run_id}", done, workers)
    run = instance.get_run_by_id(dagster_run_id)
    assert run is not None
    assert run.status == DagsterRunStatus.SUCCESS, workers.tail()


def _celery_hosts(instance: DagsterInstance, dagster_run_id: str) -> dict[str, str]:
    """Step id -> the Celery worker that ran it, from the executor's engine events."""
    hosts: dict[str, str] = {}
    for entry in instance.all_logs(dagster_run_id):
        event = entry.dagster_event
        if event is None or not event.is_engine_event or entry.step_key is None:
            continue
        metadata = event.engine_event_data.metadata
        if "Celery worker" in metadata:
            step_id = entry.step_key.rsplit("__", 1)[-1]
            hosts[step_id] = str(metadata["Celery worker"].value)
    return hosts


@pytest.mark.slow
@pytest.mark.celery
@pytest.mark.parametrize(
    "deployment", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_steps_of_one_run_run_on_both_workers_and_a_checkpoint_resumes_there(
    deployment: tuple[str, FakeServer, HoldingAgent, Workers],
) -> None:
    url, _server, agent, workers = deployment
    settings = get_settings()
    ensure_dagster_home(settings)
    store = RunStore(url)
    with DagsterInstance.get() as instance:
        launcher = SegmentLauncher(instance, settings, keep=True)
        try:
            launcher.warm()  # the code server stores the library's definitions as it loads
            lifecycle = Lifecycle(store, launcher, via="test")
            run_id = lifecycle.start(
                organization="global", slug="spread", version=1, inputs={}, user="sam"
            )
            first = lifecycle.launch_new(run_id, user="sam")
            assert first.dagster_run_id is not None, first.error
            _finished(instance, first.dagster_run_id, workers)
            assert store.get_run(run_id).status == "awaiting_approval"

            hosts = _celery_hosts(instance, first.dagster_run_id)
            assert set(hosts) >= {"a", "b", "c", "d", "review"}, hosts
            ran_on = {hosts[s].split("@")[0] for s in "abcd"}
            assert ran_on == {"w1", "w2"}, (hosts, workers.tail())
            assert sorted(agent.calls) == ["a", "b", "c", "d"]

            approval = pending(url, run_id)
            users(url, ("erin", ["editors"]))
            lifecycle.decide(approval.id, user="erin", decision="continue")
            resumed = lifecycle.resume(approval.id)
            assert resumed is not None and resumed.dagster_run_id is not None, resumed
            _finished(instance, resumed.dagster_run_id, workers)
        finally:
            launcher.close()

        run = store.get_run(run_id)
        assert run.status == "completed", run.error
        assert run.outputs == {"e": {"published": "e"}}
        hosts = _celery_hosts(instance, resumed.dagster_run_id)
        assert {hosts[s].split("@")[0] for s in "ef"} <= {"w1", "w2"}, hosts
        # Completed steps are reused, not called again: one call per agent step in all.
        assert sorted(agent.calls) == ["a", "b", "c", "d", "e", "f"]
        # The broker's credentials are in neither Dagster's events nor the workers' logs.
        secret = BROKER.split("//", 1)[1].split("@", 1)[0]
        for dagster_run_id in (first.dagster_run_id, resumed.dagster_run_id):
            for entry in instance.all_logs(dagster_run_id):
                assert secret not in str(entry.dagster_event or entry.user_message)
        assert all(secret not in log.read_text() for log in workers.logs.values())
