"""``WarmRunLauncher``: run workers forked from a warm zygote instead of a fresh interpreter.

The default launcher asks the code server to spawn a new Python for every run, which then
imports Dagster and the project before the first op can start. This launcher asks the
instance's zygote (``baton.warm_launcher.zygote``), which has those imports done, to fork the
worker; the worker then loads the code location and executes the run exactly as
``dagster api execute_run`` does. When the zygote cannot be used it launches as the default
launcher does, and says why in the log.

The worker's pid, its start time and host are kept in the run's ``baton/run_worker`` tag, so
any process (the webserver's terminate, the daemon's run monitoring) can find it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from dagster import Array, Bool, Field, Float, Noneable, StringSource
from dagster._core.launcher import (
    CheckRunHealthResult,
    DefaultRunLauncher,
    LaunchRunContext,
    RunLauncher,
    WorkerStatus,
)
from dagster._core.storage.dagster_run import DagsterRun
from dagster._serdes import ConfigurableClass, ConfigurableClassData, serialize_value

from baton.warm_launcher import client, protocol

log = logging.getLogger(__name__)

WORKER_TAG = "baton/run_worker"
_POLL_SECONDS = 0.05


class WarmRunLauncher(RunLauncher, ConfigurableClass):
    """Launches each run in a worker forked from a pre-started, pre-imported process.

    Config (all optional): ``preload`` (modules the zygote imports; ``pkg.*`` for every
    submodule), ``terminate_grace_seconds`` (SIGTERM, then SIGKILL of the worker's process
    group after this long), ``log_dir`` (worker and zygote output; default
    ``<DAGSTER_HOME>/logs``), ``prewarm`` (start the zygote in the background as soon as a
    process first uses the launcher, so the first launch is warm too), ``idle_exit_seconds``
    (the zygote exits after this long with no process holding a lease and no worker alive).
    """

    def __init__(
        self,
        inst_data: ConfigurableClassData | None = None,
        preload: Sequence[str] | None = None,
        terminate_grace_seconds: float = 5.0,
        log_dir: str | None = None,
        prewarm: bool = True,
        idle_exit_seconds: float = 60.0,
    ) -> None:
        self._inst_data = inst_data
        self._prewarm = prewarm
        self._idle_exit = idle_exit_seconds
        self._preload = list(preload) if preload is not None else None
        self._grace = terminate_grace_seconds
        self._log_dir = Path(log_dir) if log_dir else None
        self._default = DefaultRunLauncher()
        self._run_ids: set[str] = set()
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict[str, Field]:
        return {
            "preload": Field(Noneable(Array(str)), is_required=False, default_value=None),
            "terminate_grace_seconds": Field(Float, is_required=False, default_value=5.0),
            "log_dir": Field(Noneable(StringSource), is_required=False, default_value=None),
            "prewarm": Field(Bool, is_required=False, default_value=True),
            "idle_exit_seconds": Field(Float, is_required=False, default_value=60.0),
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> Self:
        return cls(inst_data=inst_data, **config_value)

    def register_instance(self, instance: Any) -> None:
        super().register_instance(instance)
        self._default.register_instance(instance)
        if self._prewarm and _can_fork():
            # In the background: a process that only reads runs must not wait for it.
            threading.Thread(target=self._hold, name="baton-zygote-prewarm", daemon=True).start()

    def _hold(self) -> None:
        try:
            client.hold(self.home, self._preload, self.log_dir, self._idle_exit)
        except (client.ZygoteUnavailable, OSError, ValueError) as exc:
            log.info("zygote not prewarmed: %s", exc)

    # -- launching ---------------------------------------------------------------------------

    @property
    def home(self) -> Path:
        return Path(self._instance.root_directory)

    @property
    def log_dir(self) -> Path:
        return self._log_dir or self.home / "logs"

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        reason = self._why_not_warm(run)
        if reason is None:
            try:
                self._launch_warm(run)
                return
            except (client.ZygoteUnavailable, OSError) as exc:
                reason = str(exc) or type(exc).__name__
        log.warning("run %s: launching without the zygote: %s", run.run_id, reason)
        self._default.launch_run(context)

    def _why_not_warm(self, run: DagsterRun) -> str | None:
        if not _can_fork():
            return "this platform cannot fork"
        origin = run.job_code_origin
        if origin is None:
            return "the run has no code origin"
        executable = origin.executable_path
        if (
            executable
            and Path(executable).absolute().parent != Path(sys.executable).absolute().parent
        ):
            return f"the run's Python ({executable}) is not this environment's"
        return None

    def _launch_warm(self, run: DagsterRun) -> None:
        answer = client.fork_worker(
            self.home,
            run_id=run.run_id,
            instance_ref=serialize_value(self._instance.get_ref()),
            log_dir=self.log_dir,
            env=os.environ,
            cwd=os.getcwd(),
            preload=self._preload,
            idle_exit_seconds=self._idle_exit,
        )
        worker = {
            "pid": int(answer["pid"]),
            "start": answer.get("start"),
            "host": socket.gethostname(),
        }
        self._instance.add_run_tags(run.run_id, {WORKER_TAG: json.dumps(worker)})
        self._run_ids.add(run.run_id)

    # -- watching and stopping ---------------------------------------------------------------

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    @property
    def supports_resume_run(self) -> bool:
        return False

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        worker = _worker_of(run)
        if worker is None:
            # Launched by the default launcher (fallback): nothing to watch, as before.
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no warm run worker recorded")
        if worker.get("host") != socket.gethostname():
            return CheckRunHealthResult(
                WorkerStatus.RUNNING, f"run worker is on {worker.get('host')}", transient=True
            )
        pid = int(worker["pid"])
        if _alive(pid, worker.get("start")):
            return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=str(pid))
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"run worker (pid {pid}) is no longer running",
            run_worker_id=str(pid),
        )

    def get_run_worker_debug_info(
        self, run: DagsterRun, include_container_logs: bool | None = True
    ) -> str | None:
        if _worker_of(run) is None:
            return None
        # Only where to look: the log may hold what an agent printed, and events are shown.
        return f"Run worker output: {client.worker_log(self.log_dir, run.run_id)}"

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        worker = _worker_of(run)
        if worker is None:
            return self._default.terminate(run_id)
        if worker.get("host") != socket.gethostname():
            self._instance.report_engine_event(
                f"Cannot terminate: the run worker is on {worker.get('host')}.", run
            )
            return False
        self._instance.report_run_canceling(run)
        pid, start = int(worker["pid"]), worker.get("start")
        if _alive(pid, start):
            _signal_group(pid, signal.SIGTERM)
            if not _wait_dead(pid, start, self._grace):
                _signal_group(pid, signal.SIGKILL)
                _wait_dead(pid, start, 2.0)
        self._mark_canceled_if_open(run_id)
        return True

    def _mark_canceled_if_open(self, run_id: str) -> None:
        # A worker that was killed, or had already died, cannot record the cancellation.
        run = self._instance.get_run_by_id(run_id)
        if run is not None and not run.is_finished:
            self._instance.report_run_canceled(run, "The run worker was stopped.")

    def join(self, timeout: int = 30) -> None:
        """Wait for the runs this launcher started (tests and ``instance_for_test``)."""
        if not self.has_instance:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = [self._instance.get_run_by_id(run_id) for run_id in self._run_ids]
            if all(run is None or run.is_finished for run in runs):
                return
            time.sleep(0.1)
        raise TimeoutError(f"runs still going after {timeout} s: {sorted(self._run_ids)}")

    def dispose(self) -> None:
        # The zygote is shared by every process of the instance and outlives this one.
        self._default.dispose()


def _can_fork() -> bool:
    return hasattr(os, "fork") and hasattr(socket, "AF_UNIX") and sys.platform != "win32"


def _worker_of(run: DagsterRun) -> dict[str, Any] | None:
    raw = run.tags.get(WORKER_TAG)
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) and "pid" in value else None


def _alive(pid: int, start: int | None) -> bool:
    """Is process ``pid`` the worker that started at ``start`` and not yet ended?"""
    if Path("/proc/self/stat").exists():
        ticks = protocol.process_start_ticks(pid)
        return ticks is not None and (start is None or ticks == start)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_dead(pid: int, start: int | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid, start):
            return True
        time.sleep(_POLL_SECONDS)
    return not _alive(pid, start)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # The worker leads its own process group (setsid), so agents' subprocesses go with it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
