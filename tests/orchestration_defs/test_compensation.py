"""Compensation end to end on a real Dagster instance: the shipped ``publisher`` calls a local
HTTP server that records every call's Idempotency-Key and body.

Three compensable steps complete and the fourth fails: the compensation sensor launches the
compensation job, which undoes them in reverse order (three, two, one), each exactly once; a
failing compensation is reported and the others still run. An abort while the run waits at a
checkpoint launches the compensation from the aborting process (the fast path).
"""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from dagster import DagsterInstance, JobDefinition, SensorResult, build_sensor_context

from agent_resources.catalog import agent_catalog
from agent_resources.registry import agent_resources
from baton.compensation import Compensations
from baton.lifecycle import Lifecycle
from baton.segments import SegmentPlan
from baton.store.service import RunStore
from orchestration_defs.compiler.compensation_job import build_compensation_job
from orchestration_defs.compiler.job import build_job
from orchestration_defs.compiler.resources import BatonStoreResource
from orchestration_defs.language.library import load_text
from orchestration_defs.language.models import OrchestrationSpec
from sensors.compensation import build_compensation_sensor
from tests.helpers import register
from tests.orchestration_defs.calls_server import CallsServer

pytestmark = pytest.mark.slow


TOPIC = "{{ inputs.topic }}"


def _undoable(step_id: str, needs: str | None) -> str:
    after = f"\n    needs: [{needs}]" if needs else ""
    return f"""
  - id: {step_id}
    agent: publisher{after}
    with: {{channel: news, summary: {step_id}}}
    compensate:
      agent: publisher
      with:
        channel: retract
        summary: "undo {{{{ step.id }}}} (answer {{{{ step.output.call }}}}, {TOPIC})"
"""


FOUR = (
    """
slug: publish-four
name: Publish four
version: 1
inputs:
  topic: {type: string, default: launch}
steps:"""
    + _undoable("one", None)
    + _undoable("two", "one")
    + _undoable("three", "two")
    + """
  - id: four
    agent: publisher
    needs: [three]
    with: {channel: news, summary: four}
"""
)

GATED = (
    """
slug: publish-gated
name: Publish gated
version: 1
inputs:
  topic: {type: string, default: gated}
steps:"""
    + _undoable("one", None)
    + """
  - id: gate
    needs: [one]
    checkpoint:
      prompt: "Publish the rest?"
      approvers: [editors]
  - id: two
    agent: publisher
    needs: [gate]
    with: {channel: news, summary: two}
"""
)


def _spec(text: str, url: str) -> OrchestrationSpec:
    spec, errors = load_text(
        textwrap.dedent(text), source="test.yaml", known_agents=set(agent_catalog())
    )
    assert spec is not None, [str(e) for e in errors]
    register(spec, url)
    return spec


def _resources(url: str) -> dict[str, Any]:
    return {"baton_store": BatonStoreResource(database_url=url), **agent_resources()}


def _jobs(spec: OrchestrationSpec) -> tuple[JobDefinition, JobDefinition]:
    compensation = build_compensation_job(spec)
    assert compensation is not None
    return build_job(spec), compensation


def _run_main(job: JobDefinition, instance: DagsterInstance, url: str) -> uuid.UUID:
    before = {r.id for r in RunStore(url).list_runs(limit=1000)}
    job.execute_in_process(
        run_config={"inputs": {}},
        instance=instance,
        resources=_resources(url),
        raise_on_error=False,
    )
    [run_id] = [r.id for r in RunStore(url).list_runs(limit=1000) if r.id not in before]
    return run_id


def _tick(instance: DagsterInstance, url: str, job: JobDefinition) -> list[Any]:
    sensor = build_compensation_sensor([job.name])
    context = build_sensor_context(
        instance=instance, resources={"baton_store": BatonStoreResource(database_url=url)}
    )
    result = sensor(context)
    return list(result.run_requests or []) if isinstance(result, SensorResult) else []


@pytest.fixture
def server(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[CallsServer]:
    with CallsServer(getattr(request, "param", [])).running() as running:
        monkeypatch.setenv("BATON_PUBLISH_URL", running.url)
        monkeypatch.setenv("BATON_PUBLISH_KEY", "publish-key")
        yield running


def _rows(url: str, run_id: uuid.UUID) -> dict[str, tuple[str, int, int]]:
    rows = Compensations(RunStore(url)).rows(run_id)
    return {r.step_id: (r.status, r.position, r.call_number) for r in rows}


def _step_statuses(url: str, run_id: uuid.UUID) -> dict[str, str]:
    return {s.step_id: s.status for s in RunStore(url).run_detail(run_id).steps}


# Steps one..three answer 200, four 400 (fails for good); then the compensations of three (200),
# two (400: fails for good, no retry) and one (200).
@pytest.mark.parametrize("server", [[200, 200, 200, 400, 200, 400, 200]], indirect=True)
def test_compensations_run_in_reverse_order_once_each_and_a_failing_one_is_reported(
    dagster_instance: DagsterInstance, server: CallsServer
) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    job, compensation_job = _jobs(_spec(FOUR, url))
    run_id = _run_main(job, dagster_instance, url)
    run = RunStore(url).get_run(run_id)
    assert (run.status, run.compensation, run.compensation_claimed_by) == (
        "failed",
        "pending",
        None,
    )
    assert _rows(url, run_id) == {
        "three": ("pending", 1, 0),
        "two": ("pending", 2, 0),
        "one": ("pending", 3, 0),
    }

    [request] = _tick(dagster_instance, url, compensation_job)
    assert _tick(dagster_instance, url, compensation_job) == []  # claimed: launched once
    result = compensation_job.execute_in_process(
        run_config=request.run_config,
        instance=dagster_instance,
        tags=dict(request.tags),
        resources=_resources(url),
        raise_on_error=False,
    )
    assert not result.success, "a failed compensation fails the Dagster run"

    keys = [f"{run_id}:{s}:1" for s in ("one", "two", "three", "four")] + [
        f"{run_id}:{s}:compensate:1" for s in ("three", "two", "one")
    ]
    assert server.keys == keys
    summaries = [c.body["summary"] for c in server.calls[4:]]
    assert summaries == [
        "undo three (answer 3, launch)",
        "undo two (answer 2, launch)",
        "undo one (answer 1, launch)",
    ]
    assert _rows(url, run_id) == {
        "three": ("completed", 1, 1),
        "two": ("failed", 2, 1),
        "one": ("completed", 3, 1),
    }
    assert _step_statuses(url, run_id) == {
        "one": "compensated",
        "two": "completed",
        "three": "compensated",
        "four": "failed",
    }
    run = RunStore(url).get_run(run_id)
    assert run.compensation == "failed"
    assert "compensation of step 'two' failed" in (run.compensation_error or "")
    events = [e.type for e in RunStore(url).run_detail(run_id).events]
    assert events.count("step.compensation_completed") == 2
    assert events.count("step.compensation_failed") == 1
    assert "run.compensation_failed" in events

    # The same request again (a daemon resubmitting it) does nothing: no call, no change.
    again = compensation_job.execute_in_process(
        run_config=request.run_config,
        instance=dagster_instance,
        tags=dict(request.tags),
        resources=_resources(url),
        raise_on_error=False,
    )
    assert not again.success
    assert len(server.calls) == 7
    assert _tick(dagster_instance, url, compensation_job) == []


class InProcessLauncher:
    """A launcher that runs a segment's job on the instance, with its config and tags."""

    def __init__(self, instance: DagsterInstance, url: str, jobs: list[JobDefinition]) -> None:
        self.instance = instance
        self.url = url
        self.jobs = {j.name: j for j in jobs}
        self.launched: list[str] = []

    def launch(self, segment: SegmentPlan) -> str:
        self.launched.append(segment.job_name)
        result = self.jobs[segment.job_name].execute_in_process(
            run_config=segment.run_config,
            instance=self.instance,
            tags=segment.all_tags,
            resources=_resources(self.url),
            raise_on_error=False,
        )
        return result.run_id

    def settle(self, run_id: uuid.UUID, status: str, **_kwargs: Any) -> None:
        pass


def test_an_abort_during_a_checkpoint_wait_compensates_from_the_aborting_process(
    dagster_instance: DagsterInstance, server: CallsServer
) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    job, compensation_job = _jobs(_spec(GATED, url))
    run_id = _run_main(job, dagster_instance, url)
    assert RunStore(url).get_run(run_id).status == "awaiting_approval"
    launcher = InProcessLauncher(dagster_instance, url, [compensation_job])
    Lifecycle(RunStore(url), launcher, via="cli").abort(run_id, by="ops", reason="stop it")

    assert launcher.launched == [compensation_job.name]
    assert server.keys == [f"{run_id}:one:1", f"{run_id}:one:compensate:1"]
    assert server.calls[1].body["summary"] == "undo one (answer 1, gated)"
    run = RunStore(url).get_run(run_id)
    assert (run.status, run.compensation, run.compensation_claimed_by) == (
        "aborted",
        "completed",
        "cli",
    )
    assert _rows(url, run_id) == {"one": ("completed", 1, 1)}
    assert _step_statuses(url, run_id)["one"] == "compensated"
    events = [e.type for e in RunStore(url).run_detail(run_id).events]
    assert "run.compensation_launched" in events
    assert _tick(dagster_instance, url, compensation_job) == []
