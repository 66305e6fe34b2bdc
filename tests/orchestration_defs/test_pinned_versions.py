"""A run resumes on the version it started on, even after the library moved on to a new one."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from dagster import DagsterInstance, SensorResult, build_sensor_context

from baton.approvals import Approvals
from baton.settings import get_settings
from baton.store.service import RunStore
from orchestration_defs.compiler.resources import BatonStoreResource
from orchestration_defs.definitions import build_definitions, pinned_jobs
from sensors.approvals import build_approval_sensor
from tests.checkpoint_helpers import launch, pending, start, users
from tests.helpers import ScriptedAgent, compile_text, write_library

V1 = """
slug: pinned-flow
name: Pinned flow
version: 1
steps:
  - id: draft
    agent: echo
    with: {title: first}
  - id: review
    checkpoint:
      prompt: "Publish {{ steps.draft.output.title }}?"
      approvers: [ann]
  - id: publish
    agent: echo
    with: {post: "v1 {{ steps.draft.output.title }}"}
outputs:
  post: "{{ steps.publish.output.post }}"
"""
V2 = (
    V1.replace("version: 1", "version: 2")
    .replace('"v1 {{', '"v2 {{')
    .replace("outputs:", "  - id: extra\n    agent: echo\n    with: {n: 1}\noutputs:")
)


def test_a_paused_run_resumes_on_its_own_version(
    dagster_instance: DagsterInstance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    users(url, ("ann", []))
    key = uuid.uuid4().hex
    _, v1_job = compile_text(V1, url)
    run_id = start(v1_job, dagster_instance, url, agent=ScriptedAgent(key=key))
    # The library moves on to version 2 while the run waits.
    spec2, v2_job = compile_text(V2, url)
    store = RunStore(url)
    [pinned] = pinned_jobs(store, [spec2])
    assert pinned.name == "pinned_flow__v1"
    # The whole code location builds with both jobs side by side.
    monkeypatch.setenv("BATON_DATABASE_URL", url)
    monkeypatch.setenv("BATON_LIBRARY_DIR", str(write_library(tmp_path / "lib", {"p.yaml": V2})))
    get_settings.cache_clear()
    repository = build_definitions()
    assert {"pinned_flow", "pinned_flow__v1"} <= {j.name for j in repository.get_all_jobs()}

    Approvals(store).decide(pending(url, run_id).id, user="ann", decision="continue")
    sensor = build_approval_sensor([v2_job.name, pinned.name], [v2_job, pinned])
    context = build_sensor_context(
        instance=dagster_instance, resources={"baton_store": BatonStoreResource(database_url=url)}
    )
    result = sensor(context)
    assert isinstance(result, SensorResult)
    [request] = result.run_requests or []
    assert request.job_name == "pinned_flow__v1"
    done = launch(
        pinned, dagster_instance, url, request, resources={"agent_echo": ScriptedAgent(key=key)}
    )
    assert done.success
    run = store.get_run(run_id)
    assert (run.status, run.version, run.outputs) == ("completed", 1, {"post": "v1 first"})
    assert "extra" not in {s.step_id for s in store.run_detail(run_id).steps}
    assert pinned_jobs(store, [spec2]) == []  # no unfinished run follows v1 any more
