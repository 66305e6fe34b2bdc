"""Dagster's own re-execution (the UI's "Re-execute") continues the same orchestration run."""

from __future__ import annotations

import uuid

from dagster import (
    DagsterInstance,
    ReexecutionOptions,
    build_reconstructable_job,
    execute_job,
)

from baton.store.service import RunStore
from tests.helpers import CALLS, register

FLAKY = """
slug: flaky
name: Flaky
version: 1
steps:
  - id: first
    agent: echo
    with: {v: 1}
  - id: second
    agent: echo
    with: {v: "{{ steps.first.output.v }}"}
outputs:
  v: "{{ steps.second.output.v }}"
"""


def _job(url: str, key: str):  # type: ignore[no-untyped-def]
    return build_reconstructable_job(
        "tests.helpers", "scripted_job", reconstructable_args=(FLAKY, url, key, {"second": 1})
    )


def _first_attempt(instance: DagsterInstance, url: str, key: str) -> tuple[str, uuid.UUID]:
    from orchestration_defs.language.library import load_text

    spec, _ = load_text(FLAKY, source="flaky.yaml", known_agents={"echo"})
    assert spec is not None
    register(spec, url)
    with execute_job(_job(url, key), instance, run_config={"inputs": {}}) as result:
        assert not result.success
        dagster_run_id = result.run_id
    runs = RunStore(url).list_runs()
    assert [r.status for r in runs] == ["failed"]
    return dagster_run_id, runs[0].id


def test_reexecute_from_failure_completes_the_same_run(dagster_instance: DagsterInstance) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    key = uuid.uuid4().hex
    parent, run_id = _first_attempt(dagster_instance, url, key)
    options = ReexecutionOptions.from_failure(parent, dagster_instance)
    with execute_job(_job(url, key), dagster_instance, reexecution_options=options) as result:
        assert result.success
        child = result.run_id
    run = RunStore(url).get_run(run_id)
    assert (run.status, run.outputs, run.error) == ("completed", {"v": 1}, None)
    assert CALLS[key] == {"first": 1, "second": 2}
    assert len(RunStore(url).list_runs()) == 1
    tagged = dagster_instance.get_run_by_id(child)
    assert tagged is not None and tagged.tags["baton/run_id"] == str(run_id)


def test_reexecute_all_reuses_completed_steps(dagster_instance: DagsterInstance) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    key = uuid.uuid4().hex
    parent, run_id = _first_attempt(dagster_instance, url, key)
    options = ReexecutionOptions(parent_run_id=parent)
    with execute_job(_job(url, key), dagster_instance, reexecution_options=options) as result:
        assert result.success
    assert RunStore(url).get_run(run_id).status == "completed"
    assert CALLS[key] == {"first": 1, "second": 2}  # `first` came from the store
    assert len(RunStore(url).list_runs()) == 1
