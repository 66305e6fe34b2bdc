"""Launching a job through the Dagster instance, as ``dagster job launch`` does.

The code location is loaded in a code server like the webserver loads it, so a run launched
here is an ordinary Dagster run: it shows in the UI with its job, and can be re-executed there.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dagster import DagsterInstance
from dagster._core.remote_representation.external import RemoteJob
from dagster._core.workspace.context import BaseWorkspaceRequestContext, WorkspaceProcessContext
from dagster._core.workspace.load_target import ModuleTarget

from baton.settings import PACKAGE_ROOT, Settings

CODE_MODULE = "orchestration_defs.definitions"


class LaunchError(Exception):
    """The code location did not load, or has no such job."""


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


@contextmanager
def workspace(
    instance: DagsterInstance, settings: Settings
) -> Iterator[BaseWorkspaceRequestContext]:
    """A workspace with Baton's code location, loaded in a code server subprocess."""
    target = ModuleTarget(
        module_name=CODE_MODULE,
        attribute="defs",
        working_directory=str(PACKAGE_ROOT),
        location_name=settings.dagster.location_name,
    )
    with WorkspaceProcessContext(instance, target) as process_context:
        yield process_context.create_request_context()


def _remote_job(ws: BaseWorkspaceRequestContext, location_name: str, job_name: str) -> Any:
    error = ws.get_code_location_error(location_name)
    if error is not None:
        raise LaunchError(f"code location '{location_name}' failed to load:\n{error.message}")
    location = ws.get_code_location(location_name)
    repos = list(location.get_repositories().values())
    for repo in repos:
        if repo.has_job(job_name):
            return location, repo, repo.get_full_job(job_name)
    raise LaunchError(f"no job '{job_name}' in code location '{location_name}'")


def launch_job(
    instance: DagsterInstance,
    settings: Settings,
    *,
    job_name: str,
    run_config: Mapping[str, Any],
    tags: Mapping[str, str],
) -> str:
    """Create and launch a Dagster run of ``job_name``; returns its run id.

    The run is launched directly (not queued), so it starts even when no daemon runs.
    """
    log_path = settings.data_dir / "logs" / "launch.log"
    with children_output_to(log_path), workspace(instance, settings) as ws:
        location, repo, remote_job = _remote_job(ws, settings.dagster.location_name, job_name)
        plan = location.get_execution_plan(
            remote_job,
            dict(run_config),
            step_keys_to_execute=None,
            known_state=None,
            instance=instance,
        )
        run = instance.create_run(
            job_name=job_name,
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
        instance.launch_run(run.run_id, ws)
        return run.run_id


__all__ = ["LaunchError", "RemoteJob", "launch_job", "workspace"]
