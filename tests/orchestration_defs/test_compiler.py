"""The compiler: one job per definition, typed run config, retry policies, names and tags."""

from __future__ import annotations

import pytest
from dagster import Backoff, DagsterInvalidConfigError, Jitter

from orchestration_defs.compiler.job import build_job
from orchestration_defs.compiler.resources import default_resources
from orchestration_defs.language.library import load_text
from orchestration_defs.language.models import OrchestrationSpec

SPEC = """
slug: my-flow
name: My flow
version: 3
description: Something useful.
tags: {team: data}
inputs:
  topic: {type: string, required: true, description: What about}
  count: {type: integer, default: 2}
  ratio: {type: number}
  mode: {type: string, enum: [fast, slow], default: fast}
  items: {type: array, default: [1, 2]}
  extra: {type: object}
steps:
  - id: first
    agent: echo
    description: The first step.
    with: {t: "{{ inputs.topic }}"}
    retry: {max_attempts: 4, delay_seconds: 2, backoff: exponential, jitter: plus_minus}
  - id: second
    agent: echo
    with: {x: "{{ steps.first.output.t }}"}
  - id: third
    agent: echo
    needs: [first]
outputs:
  x: "{{ steps.second.output.x }}"
"""


def _spec() -> OrchestrationSpec:
    spec, errors = load_text(SPEC, source="my-flow.yaml", known_agents={"echo"})
    assert not errors, errors
    assert spec is not None
    return spec


def test_job_is_named_after_the_slug_with_tags_and_description() -> None:
    job = build_job(_spec())
    assert job.name == "my_flow"
    assert job.description == "Something useful."
    assert job.tags["baton/orchestration"] == "my-flow"
    assert job.tags["baton/version"] == "3"
    assert job.tags["team"] == "data"


def test_one_op_per_step_prefixed_with_the_job_and_wired_by_dependencies() -> None:
    job = build_job(_spec())
    names = {node.name for node in job.graph.nodes}
    assert names == {
        "my_flow__start",
        "my_flow__first",
        "my_flow__second",
        "my_flow__third",
        "my_flow__finish",
    }
    second = job.graph.node_named("my_flow__second")
    deps = job.dependencies[next(k for k in job.dependencies if k.name == second.name)]
    assert {d.node for d in deps.values()} == {"my_flow__start", "my_flow__first"}
    assert job.graph.node_named("my_flow__first").definition.description == "The first step."


def test_retry_policy_comes_from_retry() -> None:
    job = build_job(_spec())
    policy = job.graph.node_named("my_flow__first").definition.retry_policy
    assert policy is not None
    assert policy.max_retries == 3
    assert policy.delay == 2
    assert policy.backoff == Backoff.EXPONENTIAL
    assert policy.jitter == Jitter.PLUS_MINUS
    assert job.graph.node_named("my_flow__second").definition.retry_policy is None


def test_in_process_executor_is_the_default() -> None:
    assert build_job(_spec()).executor_def.name == "in_process"


def test_run_config_has_typed_inputs_with_defaults() -> None:
    job = build_job(_spec())
    fields = job.run_config_schema.config_type.fields  # type: ignore[attr-defined]
    inputs = fields["inputs"].config_type.fields
    assert inputs["topic"].is_required
    assert inputs["count"].default_value == 2
    assert inputs["mode"].default_value == "fast"
    assert inputs["items"].default_value == [1, 2]
    assert not inputs["ratio"].is_required
    assert not fields["baton_run_id"].is_required  # not prefilled: test_launchpad_config.py


def test_missing_required_input_is_refused_before_the_run_starts() -> None:
    job = build_job(_spec())
    with pytest.raises(DagsterInvalidConfigError) as info:
        job.execute_in_process(resources=default_resources(), run_config={"inputs": {}})
    assert "topic" in str(info.value)


def test_wrong_input_type_and_enum_are_refused_by_config() -> None:
    job = build_job(_spec())
    with pytest.raises(DagsterInvalidConfigError):
        job.execute_in_process(
            resources=default_resources(), run_config={"inputs": {"topic": "x", "count": "many"}}
        )
    with pytest.raises(DagsterInvalidConfigError):
        job.execute_in_process(
            resources=default_resources(), run_config={"inputs": {"topic": "x", "mode": "medium"}}
        )
