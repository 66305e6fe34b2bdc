"""Create and launch runs through a real code server, as ``dagster job launch`` does."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from dagster import DagsterInstance
from dagster._core.workspace.context import BaseWorkspaceRequestContext, WorkspaceProcessContext
from dagster._core.workspace.load_target import ModuleTarget

from baton.launch import create_run_of
from baton.settings import PACKAGE_ROOT

JOBS_MODULE = "tests.baton.warm_fixtures.jobs"
LOCATION = "warm_fixtures"


@contextmanager
def workspace(
    instance: DagsterInstance, module: str = JOBS_MODULE, location: str = LOCATION
) -> Iterator[BaseWorkspaceRequestContext]:
    target = ModuleTarget(
        module_name=module,
        attribute="defs",
        working_directory=str(PACKAGE_ROOT),
        location_name=location,
    )
    with WorkspaceProcessContext(instance, target) as process_context:
        yield process_context.create_request_context()


def create_run(
    instance: DagsterInstance,
    ws: BaseWorkspaceRequestContext,
    job_name: str,
    *,
    location: str = LOCATION,
    run_config: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
) -> str:
    """A NOT_STARTED run of ``job_name`` with its snapshots, ready for ``launch_run``."""
    error = ws.get_code_location_error(location)
    if error is not None:
        raise RuntimeError(error.message)
    code_location = ws.get_code_location(location)
    repo = next(iter(code_location.get_repositories().values()))
    remote_job = repo.get_full_job(job_name)
    run = create_run_of(instance, code_location, repo, remote_job, run_config or {}, tags or {})
    return run.run_id
