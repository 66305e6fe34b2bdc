"""The launchpad's config for a Baton job: the inputs, never Baton's internal run id.

Checked with the functions Dagster's UI uses: the default YAML the launchpad opens with (the
GraphQL ``rootDefaultYaml``, built from the job snapshot) and "Scaffold missing config".
"""

from __future__ import annotations

import pytest
import yaml
from dagster import DagsterInstance
from dagster._cli.config_scaffolder import scaffold_job_config
from dagster._core.snap.snap_to_yaml import default_values_yaml_from_type_snap

from agent_resources.resources import EchoAgentResource
from baton.segments import RUN_TAG, STATUS_TAG
from baton.settings import get_settings
from baton.store.service import RunStore
from orchestration_defs.compiler.job import build_job
from orchestration_defs.compiler.resources import BatonStoreResource
from orchestration_defs.language.library import load_text
from orchestration_defs.language.models import OrchestrationSpec
from tests.helpers import compile_text

SPEC = """
slug: launchpad-flow
name: Launchpad flow
version: 1
inputs:
  topic: {type: string, required: true}
  tone: {type: string, enum: [plain, formal], default: plain}
steps:
  - id: greet
    agent: echo
    with: {text: "{{ inputs.topic }}"}
outputs:
  text: "{{ steps.greet.output.text }}"
"""


def _spec() -> OrchestrationSpec:
    spec, errors = load_text(SPEC, source="launchpad-flow.yaml", known_agents={"echo"})
    assert not errors and spec is not None, errors
    return spec


def _launchpad_default_yaml() -> dict:
    snapshot = build_job(_spec()).get_job_snapshot()
    schema = snapshot.config_schema_snapshot
    root_key = snapshot.mode_def_snaps[0].root_config_key
    assert root_key is not None
    return yaml.safe_load(
        default_values_yaml_from_type_snap(schema, schema.get_config_snap(root_key))
    )


def test_the_run_id_is_optional_without_a_default() -> None:
    fields = build_job(_spec()).run_config_schema.config_type.fields  # type: ignore[attr-defined]
    assert not fields["baton_run_id"].is_required
    assert not fields["baton_run_id"].default_provided


def test_the_launchpad_opens_without_the_run_id() -> None:
    default = _launchpad_default_yaml()
    assert "baton_run_id" not in default
    assert default["inputs"]["tone"] == "plain"
    scaffold = scaffold_job_config(build_job(_spec()), skip_non_required=False)
    assert "baton_run_id" in scaffold  # it exists for Baton's callers, only not prefilled
    assert "baton_run_id" not in scaffold_job_config(build_job(_spec()), skip_non_required=True)


def test_a_launch_without_the_run_id_starts_a_new_run_tagged_completed(
    dagster_instance: DagsterInstance,
) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    _, job = compile_text(SPEC, url)
    # Exactly what the launchpad submits: the inputs, no baton_run_id.
    result = job.execute_in_process(
        run_config={"inputs": {"topic": "launchpad"}},
        instance=dagster_instance,
        resources={
            "baton_store": BatonStoreResource(database_url=url),
            "agent_echo": EchoAgentResource(slug="echo"),
        },
    )
    assert result.success
    [run] = RunStore(url).list_runs()
    assert run.status == "completed" and run.outputs == {"text": "launchpad"}
    segment = dagster_instance.get_run_by_id(result.run_id)
    assert segment is not None
    assert segment.tags[RUN_TAG] == str(run.id)
    assert segment.tags[STATUS_TAG] == "completed"


def test_a_launchpad_launch_is_held_to_the_same_input_limits_as_the_api(
    dagster_instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATON_API__MAX_STRING_CHARS", "8")
    get_settings.cache_clear()
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    _, job = compile_text(SPEC, url)
    try:
        result = job.execute_in_process(
            run_config={"inputs": {"topic": "longer than eight"}},
            instance=dagster_instance,
            resources={
                "baton_store": BatonStoreResource(database_url=url),
                "agent_echo": EchoAgentResource(slug="echo"),
            },
            raise_on_error=False,
        )
    finally:
        get_settings.cache_clear()
    assert not result.success
    failure = str(result.get_step_failure_events()[0].step_failure_data.error)
    assert "invalid inputs" in failure and "inputs.topic" in failure
    assert RunStore(url).list_runs() == []  # nothing stored
