"""Driving checkpoint runs in tests: launch, evaluate the approval sensor, run what it asks."""

from __future__ import annotations

import uuid
from typing import Any

from dagster import (
    DagsterInstance,
    ExecuteInProcessResult,
    JobDefinition,
    RunRequest,
    SensorResult,
    build_sensor_context,
)

from baton.approvals import Approvals
from baton.store.service import RunStore
from orchestration_defs.compiler.resources import BatonStoreResource
from sensors.approvals import build_approval_sensor
from tests.helpers import execute


def users(url: str, *specs: tuple[str, list[str]], org: str = "global") -> None:
    from baton.store.users import UsersRepository

    with RunStore(url).session() as s:
        for name, groups in specs:
            UsersRepository(s).upsert(organization=org, name=name, groups=groups)


def tick(instance: DagsterInstance, url: str, job: JobDefinition) -> list[RunRequest]:
    """One evaluation of the approval sensor against the instance; its run requests."""
    sensor = build_approval_sensor([job.name], [job])
    context = build_sensor_context(
        instance=instance, resources={"baton_store": BatonStoreResource(database_url=url)}
    )
    result = sensor(context)
    if isinstance(result, SensorResult):
        return list(result.run_requests or [])
    return []


def launch(
    job: JobDefinition, instance: DagsterInstance, url: str, request: RunRequest, **kw: Any
) -> ExecuteInProcessResult:
    """Run what a request asks, as the daemon would (same config and tags)."""
    config = request.run_config
    result = job.execute_in_process(
        run_config=config,
        instance=instance,
        tags=dict(request.tags),
        raise_on_error=False,
        resources={"baton_store": BatonStoreResource(database_url=url), **kw.get("resources", {})},
    )
    return result


def start(job: JobDefinition, instance: DagsterInstance, url: str, **kw: Any) -> uuid.UUID:
    """Launch a new orchestration run; it stops at its first checkpoint."""
    before = {r.id for r in RunStore(url).list_runs(limit=1000)}
    result = execute(job, instance, url, **kw)
    assert result.success, "a run that pauses still ends successfully"
    [run_id] = [r.id for r in RunStore(url).list_runs(limit=1000) if r.id not in before]
    return run_id


def pending(url: str, run_id: uuid.UUID) -> Any:
    [approval] = Approvals(RunStore(url)).find(run_id=run_id, status="pending")
    return approval
