"""A real Baton deployment (`baton up`: webserver, daemon, API) that a fault test can kill -9
whole and start again on the same ports, stores and DAGSTER_HOME.

Every process of the deployment carries ``BATON_FAULT_DEPLOYMENT=<id>`` in its environment:
the children of `baton up` lead their own sessions and the run-worker zygote daemonizes, so
neither the process group nor the process tree finds them all; the environment does.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from baton.store.service import RunStore
from tests.e2e.deploy import free_port, wait_for_jobs

BATON = str(Path(sys.executable).with_name("baton"))
MARKER = "BATON_FAULT_DEPLOYMENT"
BOUND = 150.0  # how long a test waits for any one thing


def wait_for(what: str, done: Callable[[], bool], seconds: float = BOUND) -> float:
    """Poll ``done`` until true; the seconds it took (fails the test past ``seconds``)."""
    started = time.monotonic()
    while not done():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"gave up waiting for {what} after {seconds:.0f} s")
        time.sleep(0.25)
    return time.monotonic() - started


class Deployment:
    """`baton up` with ``env`` on fixed free ports; ``start``, ``kill9``, ``stop``."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.id = uuid.uuid4().hex
        self.ui_port, self.api_port = free_port(), free_port()
        self.env = {
            **env,
            MARKER: self.id,
            "BATON_API__PORT": str(self.api_port),
            "BATON_API__PREWARM": "true",
        }
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def ui(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}"

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def store(self) -> RunStore:
        return RunStore(self.env["BATON_DATABASE_URL"])

    def start(self) -> None:
        self.starts += 1
        log = (self.log_dir / f"baton-up-{self.starts}.log").open("w")
        self.proc = subprocess.Popen(
            [BATON, "up", "--port", str(self.ui_port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )
        log.close()
        wait_for_jobs(self.ui, self.proc)
        wait_for("the API's /healthz", self._healthy, 60)

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.api}/healthz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def pids(self) -> list[int]:
        """Every live process of this deployment (found by the marker in its environment)."""
        found = []
        needle = f"{MARKER}={self.id}".encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
        return found

    def child_pid(self, needle: str) -> int:
        """The pid of the deployment's process whose command line contains ``needle``."""
        for pid in self.pids():
            with contextlib.suppress(OSError):
                if (
                    needle
                    in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                ):
                    return pid
        raise AssertionError(f"no process of the deployment runs {needle!r}")

    def kill9(self) -> int:
        """SIGKILL every process of the deployment at once; how many there were."""
        pids = self.pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(30)
        wait_for("the killed processes to go", lambda: not self.pids(), 30)
        return len(pids)

    def stop(self) -> None:
        """SIGTERM `baton up` (it stops its children), then SIGKILL whatever is left."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(30)
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.wait(10)

    def cli(self, *args: str) -> str:
        """A `baton` command against this deployment's stores; its stdout."""
        done = subprocess.run(
            [BATON, *args], capture_output=True, text=True, timeout=120, env=self.env
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def token(self, user: str, role: str, *groups: str) -> dict[str, str]:
        """An Authorization header for a new user with ``role`` (and ``groups``)."""
        group_args = [arg for g in groups for arg in ("--group", g)]
        self.cli("users", "add", user, *group_args)
        out = self.cli("tokens", "create", "--user", user, "--role", role)
        return {"Authorization": f"Bearer {out.splitlines()[0].strip()}"}

    def call(self, method: str, path: str, headers: dict[str, str], **kwargs: Any) -> Any:
        answer = httpx.request(method, f"{self.api}{path}", headers=headers, timeout=60, **kwargs)
        assert answer.status_code < 300, (answer.status_code, answer.text)
        return answer.json()

    def launch(self, headers: dict[str, str], orchestration: str) -> uuid.UUID:
        body = {"orchestration": orchestration, "inputs": {}}
        return uuid.UUID(self.call("POST", "/api/v1/runs", headers, json=body)["run_id"])

    def status(self, run_id: uuid.UUID) -> str:
        return self.store.get_run(run_id).status

    def wait_status(self, run_id: uuid.UUID, status: str, seconds: float = BOUND) -> float:
        return wait_for(f"run {run_id} {status}", lambda: self.status(run_id) == status, seconds)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("*.log")))


@contextlib.contextmanager
def deployed(env: dict[str, str], log_dir: Path) -> Iterator[Deployment]:
    """A started deployment, stopped (whatever is left of it) at the end."""
    deployment = Deployment(env, log_dir)
    try:
        deployment.start()
        yield deployment
    finally:
        deployment.stop()


def steps(store: RunStore, run_id: uuid.UUID) -> dict[str, str]:
    """Step id -> status of a run."""
    return {s.step_id: s.status for s in store.run_detail(run_id).steps}


def recover(d: Deployment, run_id: uuid.UUID, step_id: str) -> str:
    """How an orphaned step came back: the reaper fails it and retries it under the step's
    ``retry:`` policy (no operator needed), or it had completed after all."""
    wait_for(f"the reaper on run {run_id}", lambda: steps(d.store, run_id)[step_id] != "running")
    if steps(d.store, run_id)[step_id] == "completed":
        return "completed, nothing to recover"
    wait_for("the reaper's policy retry", lambda: d.status(run_id) != "failed")
    return "reaper retry"


def dump(value: Any) -> str:
    return json.dumps(value, default=str, indent=1)
