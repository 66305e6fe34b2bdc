"""Create and launch runs through a real code server, as ``dagster job launch`` does."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from dagster import DagsterInstance
from dagster._core.workspace.context import BaseWorkspaceRequestContext, WorkspaceProcessContext
from dagster._core.workspace.load_target import ModuleTarget

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
    config = dict(run_config or {})
    plan = code_location.get_execution_plan(
        remote_job, config, step_keys_to_execute=None, known_state=None, instance=instance
    )
    run = instance.create_run(
        job_name=job_name,
        run_id=None,
        run_config=config,
        resolved_op_selection=None,
        step_keys_to_execute=None,
        op_selection=None,
        status=None,
        root_run_id=None,
        parent_run_id=None,
        tags={**remote_job.tags, **(tags or {})},
        job_snapshot=remote_job.job_snapshot,
        execution_plan_snapshot=plan.execution_plan_snapshot,
        parent_job_snapshot=remote_job.parent_job_snapshot,
        remote_job_origin=remote_job.get_remote_origin(),
        job_code_origin=remote_job.get_python_origin(),
        asset_selection=None,
        asset_check_selection=None,
        asset_graph=repo.asset_graph,
    )
    return run.run_id
