"""Launching segments through the Dagster instance, as ``dagster job launch`` does.

The code location is loaded in a code server like the webserver loads it, so a run launched
here is an ordinary Dagster run: it shows in the UI with its job, and can be re-executed there.
A long-lived process (the API) keeps its code server between launches, so a resume costs one
snapshot request instead of a code server start; it reloads it when the library changes or a
job is missing.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from baton.segments import SegmentPlan
from baton.settings import PACKAGE_ROOT, Settings

if TYPE_CHECKING:
    from dagster import DagsterInstance, DagsterRun
    from dagster._core.workspace.context import (
        BaseWorkspaceRequestContext,
        WorkspaceProcessContext,
    )

CODE_MODULE = "orchestration_defs.definitions"
log = logging.getLogger(__name__)


class LaunchError(Exception):
    """The code location did not load, or has no such job, or Dagster refused the run."""


@contextmanager
def children_output_to(log_path: Path) -> Iterator[None]:
    """Processes spawned inside (code server, run worker) write to ``log_path``, not here.

    They inherit file descriptors 1 and 2 when they start, so those are pointed at the log for
    the duration and restored after; this process's own output is unaffected afterwards.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, log_fd):
            os.close(fd)


def _process_context(instance: DagsterInstance, settings: Settings) -> WorkspaceProcessContext:
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import ModuleTarget

    target = ModuleTarget(
        module_name=CODE_MODULE,
        attribute="defs",
        working_directory=str(PACKAGE_ROOT),
        location_name=settings.dagster.location_name,
    )
    return WorkspaceProcessContext(instance, target)


@contextmanager
def workspace(
    instance: DagsterInstance, settings: Settings
) -> Iterator[BaseWorkspaceRequestContext]:
    """A workspace with Baton's code location, loaded in a code server subprocess."""
    with _process_context(instance, settings) as process_context:
        yield process_context.create_request_context()


def _library_stamp(settings: Settings) -> tuple[tuple[str, float], ...]:
    """What the library folders hold now (names and mtimes): a change means reload."""
    stamp = []
    for folder in settings.library_dirs:
        if folder.is_dir():
            for path in sorted(folder.rglob("*.y*ml")):
                stamp.append((str(path), path.stat().st_mtime))
    return tuple(stamp)


class SegmentLauncher:
    """Launches segments on one instance; ``keep=True`` keeps the code server between them."""

    def __init__(self, instance: DagsterInstance, settings: Settings, *, keep: bool) -> None:
        self.instance = instance
        self.settings = settings
        self.keep = keep
        self._context: WorkspaceProcessContext | None = None
        self._stamp: tuple[tuple[str, float], ...] = ()
        # Starting a code server points this process's stdout/stderr at a log file for a
        # moment (children_output_to): one launch at a time.
        self._lock = threading.Lock()

    def launch(self, segment: SegmentPlan) -> str:
        """Create and start a Dagster run for ``segment``; returns its run id.

        Started at once when the run coordinator's limit allows it (no dequeue wait), else
        queued for the daemon.

        Raises:
            LaunchError: the code location failed to load, has no such job, or the launch failed.
        """
        with self._lock:
            if not self.keep:  # a short-lived process: its code server and run worker log apart
                with children_output_to(self._log), workspace(self.instance, self.settings) as ws:
                    return self._launch_in(ws, segment)
            ws = self._workspace(fresh=_library_stamp(self.settings) != self._stamp)
            try:
                return self._launch_in(ws, segment)
            except LaunchError as exc:
                if "no job" not in str(exc):
                    raise
                # A job added since the code server loaded: look once more.
                return self._launch_in(self._workspace(fresh=True), segment)

    @property
    def _log(self) -> Path:
        return self.settings.data_dir / "logs" / "launch.log"

    def warm(self) -> None:
        """Start the code server now (a kept launcher only)."""
        if self.keep:
            with self._lock:
                self._workspace(fresh=False)

    def _workspace(self, *, fresh: bool) -> BaseWorkspaceRequestContext:
        """The kept code server; ``fresh`` replaces it (the library changed).

        Only starting one points this process's output at the launch log (the code server
        inherits it), and a replaced one is shut down with its context, not left behind.
        """
        if self._context is not None and fresh:
            self._context.__exit__(None, None, None)
            self._context = None
        if self._context is None:
            with children_output_to(self._log):
                context = _process_context(self.instance, self.settings)
                context.__enter__()
            self._context = context
            self._stamp = _library_stamp(self.settings)
        return self._context.create_request_context()

    def _launch_in(self, ws: BaseWorkspaceRequestContext, segment: SegmentPlan) -> str:
        location, repo, remote_job = _remote_job(
            ws, self.settings.dagster.location_name, segment.job_name
        )
        try:
            run = create_run_of(
                self.instance, location, repo, remote_job, segment.run_config, segment.all_tags
            )
        except Exception as exc:  # config or plan refused: say which job and why
            raise LaunchError(f"job '{segment.job_name}' refused the run: {exc}") from exc
        if self._under_limit():
            self.instance.launch_run(run.run_id, ws)
        else:
            self.instance.submit_run(run.run_id, ws)
        return run.run_id

    def _under_limit(self) -> bool:
        """Whether a run started now stays within the queued coordinator's limit."""
        from dagster import RunsFilter
        from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES

        limit = getattr(self.instance.run_coordinator, "max_concurrent_runs", None)
        if limit is None or limit < 0:
            return True
        running = self.instance.get_runs_count(RunsFilter(statuses=IN_PROGRESS_RUN_STATUSES))
        return bool(running < limit)

    def settle(
        self, run_id: uuid.UUID, status: str, *, last_dagster_run_id: str | None, reason: str
    ) -> None:
        """Show an ended run's true status on its segments (``baton.dagster_status``)."""
        from baton.dagster_status import settle_run

        settle_run(
            self.instance, run_id, status, last_dagster_run_id=last_dagster_run_id, reason=reason
        )

    def close(self) -> None:
        with self._lock:
            if self._context is not None:
                self._context.__exit__(None, None, None)
                self._context = None


def create_run_of(
    instance: DagsterInstance,
    location: Any,
    repo: Any,
    remote_job: Any,
    run_config: Mapping[str, Any],
    tags: Mapping[str, str],
) -> DagsterRun:
    """An ordinary Dagster run of ``remote_job``, as ``dagster job launch`` creates it (the
    execution plan from its code location, the job's own tags under ``tags``); not launched."""
    plan = location.get_execution_plan(
        remote_job, dict(run_config), step_keys_to_execute=None, known_state=None, instance=instance
    )
    return instance.create_run(
        job_name=remote_job.name,
        run_id=None,
        run_config=dict(run_config),
        resolved_op_selection=None,
        step_keys_to_execute=None,
        op_selection=None,
        status=None,
        root_run_id=None,
        parent_run_id=None,
        tags={**remote_job.tags, **tags},
        job_snapshot=remote_job.job_snapshot,
        execution_plan_snapshot=plan.execution_plan_snapshot,
        parent_job_snapshot=remote_job.parent_job_snapshot,
        remote_job_origin=remote_job.get_remote_origin(),
        job_code_origin=remote_job.get_python_origin(),
        asset_selection=None,
        asset_check_selection=None,
        asset_graph=repo.asset_graph,
    )


def _remote_job(ws: BaseWorkspaceRequestContext, location_name: str, job_name: str) -> Any:
    error = ws.get_code_location_error(location_name)
    if error is not None:
        raise LaunchError(f"code location '{location_name}' failed to load:\n{error.message}")
    location = ws.get_code_location(location_name)
    for repo in location.get_repositories().values():
        if repo.has_job(job_name):
            return location, repo, repo.get_full_job(job_name)
    raise LaunchError(f"no job '{job_name}' in code location '{location_name}'")


def launch_once(settings: Settings, segment: SegmentPlan) -> str:
    """Launch one segment from a short-lived process (the CLI), then let go of Dagster."""
    from dagster import DagsterInstance

    from baton.dagster_home import ensure_dagster_home

    ensure_dagster_home(settings)
    with DagsterInstance.get() as instance:
        return SegmentLauncher(instance, settings, keep=False).launch(segment)


class OneShotLauncher:
    """A ``baton.lifecycle.Launcher`` for a short-lived process: one code server per launch."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def launch(self, segment: SegmentPlan) -> str:
        return launch_once(self.settings, segment)

    def settle(
        self, run_id: uuid.UUID, status: str, *, last_dagster_run_id: str | None, reason: str
    ) -> None:
        from dagster import DagsterInstance

        from baton.dagster_home import ensure_dagster_home

        ensure_dagster_home(self.settings)
        with DagsterInstance.get() as instance:
            SegmentLauncher(instance, self.settings, keep=False).settle(
                run_id, status, last_dagster_run_id=last_dagster_run_id, reason=reason
            )


__all__ = ["LaunchError", "OneShotLauncher", "SegmentLauncher", "launch_once", "workspace"]
