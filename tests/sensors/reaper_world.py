"""A world for the reaper's tests: a two-step run whose step ``b`` calls the shipped
``publisher`` (an api agent) at a local HTTP server that records each call's idempotency key,
Dagster runs as real rows of a real instance, and the reaper sensor ticked with a clock."""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    Definitions,
    JobDefinition,
    RunRequest,
    SensorResult,
    SkipReason,
    build_sensor_context,
)
from dagster._core.test_utils import create_run_for_test

from agent_resources.catalog import agent_catalog
from agent_resources.registry import agent_resources
from baton.segments import RUN_TAG, SEGMENT_TAG
from baton.store.service import RunStore, StepPlan
from orchestration_defs.compiler.job import build_job
from orchestration_defs.compiler.resources import BatonStoreResource
from orchestration_defs.language.library import load_text
from orchestration_defs.language.models import OrchestrationSpec
from sensors.reaper import build_reaper_sensor
from tests.helpers import register
from tests.orchestration_defs.calls_server import CallsServer

SLUG = "two"
PLAN = [StepPlan("a", "agent", "publisher"), StepPlan("b", "agent", "publisher")]


def flow(retry: str = "{max_attempts: 1}", *, undo_a: bool = False) -> str:
    """Step ``a`` then ``b``, both publishers; ``b`` with the ``retry:`` given, ``a`` with a
    ``compensate:`` if ``undo_a``."""
    undo = "compensate: {agent: publisher, with: {channel: retract, summary: undo}}"
    return textwrap.dedent(
        f"""
        slug: {SLUG}
        name: Two
        version: 1
        steps:
          - id: a
            agent: publisher
            with: {{channel: news, summary: first}}
            {undo if undo_a else ""}
          - id: b
            needs: [a]
            agent: publisher
            retry: {retry}
            with: {{channel: news, summary: second}}
        """
    )


def setup(text: str, url: str) -> JobDefinition:
    """Register ``text`` as the code location would and return its job, resources bound."""
    spec, errors = load_text(text, source="t.yaml", known_agents=set(agent_catalog()))
    assert spec is not None, errors
    register(spec, url)
    return _job(spec, url)


def _job(spec: OrchestrationSpec, url: str) -> JobDefinition:
    resources: dict[str, Any] = {
        "baton_store": BatonStoreResource(database_url=url),
        **agent_resources(),
    }
    return Definitions(jobs=[build_job(spec)], resources=resources).get_job_def(spec.job_name)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[CallsServer]:
    with CallsServer().running() as running:
        monkeypatch.setenv("BATON_PUBLISH_URL", running.url)
        monkeypatch.setenv("BATON_PUBLISH_KEY", "publish-key")
        yield running


def dagster_run(
    instance: DagsterInstance,
    run_id: uuid.UUID,
    status: DagsterRunStatus,
    tags: dict[str, str] | None = None,
) -> str:
    tags = {RUN_TAG: str(run_id), **(tags or {})}
    return create_run_for_test(instance, job_name=SLUG, status=status, tags=tags).run_id


def mid_step(
    url: str, instance: DagsterInstance, status: DagsterRunStatus
) -> tuple[uuid.UUID, str]:
    """A run whose ``a`` completed and whose ``b`` (call 1) is running in a Dagster run of
    ``status``: what a worker killed mid-call leaves."""
    store = RunStore(url)
    run_id = store.create_run(organization="global", slug=SLUG, version=1, inputs={})
    owner = dagster_run(instance, run_id, status)
    store.begin_segment(run_id=run_id, dagster_run_id=owner, steps=PLAN)
    store.start_step(run_id, "a", input={}, dagster_run_id=owner)
    store.complete_step(run_id, "a", output={"done": 1})
    store.start_step(run_id, "b", input={}, dagster_run_id=owner)
    return run_id, owner


def orphan_again(url: str, instance: DagsterInstance, request: RunRequest) -> str:
    """The retry segment of ``request`` starts ``b`` and its Dagster run is then CANCELED."""
    run_id = uuid.UUID(request.tags[RUN_TAG])
    segment = request.tags[SEGMENT_TAG]
    owner = dagster_run(instance, run_id, DagsterRunStatus.CANCELED, dict(request.tags))
    store = RunStore(url)
    store.begin_segment(run_id=run_id, dagster_run_id=owner, steps=PLAN, segment=segment)
    store.start_step(run_id, "b", input={}, dagster_run_id=owner, segment=segment)
    return owner


def tick(
    instance: DagsterInstance, url: str, now: datetime, jobs: tuple[str, ...] = (SLUG,)
) -> SensorResult | SkipReason:
    """One evaluation of the reaper sensor at ``now`` (a code location holding ``jobs``)."""
    context = build_sensor_context(
        instance=instance, resources={"baton_store": BatonStoreResource(database_url=url)}
    )
    result = build_reaper_sensor(jobs, clock=lambda: now)(context)
    assert isinstance(result, SensorResult | SkipReason)
    return result


def requests_of(result: SensorResult | SkipReason) -> list[RunRequest]:
    return list(result.run_requests or []) if isinstance(result, SensorResult) else []


def execute(job: JobDefinition, instance: DagsterInstance, request: RunRequest) -> bool:
    """Run the requested segment for real, in process, as the daemon's launch would."""
    result = job.execute_in_process(
        run_config=request.run_config,
        tags=request.tags,
        instance=instance,
        raise_on_error=False,
    )
    return result.success


def step(url: str, run_id: uuid.UUID, step_id: str) -> Any:
    return next(s for s in RunStore(url).run_detail(run_id).steps if s.step_id == step_id)


def statuses(url: str, run_id: uuid.UUID) -> dict[str, str]:
    return {s.step_id: s.status for s in RunStore(url).run_detail(run_id).steps}


def events(url: str, run_id: uuid.UUID, type_: str) -> list[dict[str, Any]]:
    return [e.payload for e in RunStore(url).run_detail(run_id).events if e.type == type_]
