"""One idempotency key per logical call, and a timed-out call stopped before its retry.

The shipped ``publisher`` (an api agent) calls a local server that records each call's
Idempotency-Key and when it started and ended.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from dagster import (
    DagsterInstance,
    Definitions,
    JobDefinition,
    ReexecutionOptions,
    build_reconstructable_job,
    execute_job,
)

from agent_resources.catalog import agent_catalog
from agent_resources.registry import agent_resources
from baton.db.engine import session_scope
from baton.store.service import RunStore
from baton.store.steps import StepsRepository
from orchestration_defs.compiler.job import build_job
from orchestration_defs.compiler.resources import BatonStoreResource
from orchestration_defs.language.library import load_text
from tests.helpers import register
from tests.orchestration_defs.calls_server import HANG, CallsServer

ONCE = """
slug: publish-once
name: Publish once
version: 1
steps:
  - id: publish
    agent: publisher
    with: {channel: news, summary: hello}
"""

RETRIED = """
slug: publish-retried
name: Publish retried
version: 1
steps:
  - id: publish
    agent: publisher
    timeout_seconds: 1.5
    retry: {max_attempts: 2}
    with: {channel: news, summary: hello}
"""


def publisher_job(text: str, url: str) -> JobDefinition:
    """The job of ``text`` with the real agent resources (module level: reconstructable)."""
    spec, errors = load_text(
        textwrap.dedent(text), source="test.yaml", known_agents=set(agent_catalog())
    )
    assert spec is not None, errors
    resources: dict[str, Any] = {
        "baton_store": BatonStoreResource(database_url=url),
        **agent_resources(),
    }
    return Definitions(jobs=[build_job(spec)], resources=resources).get_job_def(spec.job_name)


def _register(text: str, url: str) -> None:
    spec, _ = load_text(textwrap.dedent(text), source="t.yaml", known_agents=set(agent_catalog()))
    assert spec is not None
    register(spec, url)


@pytest.fixture
def server(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[CallsServer]:
    script = getattr(request, "param", [])
    with CallsServer(script).running() as running:
        monkeypatch.setenv("BATON_PUBLISH_URL", running.url)
        monkeypatch.setenv("BATON_PUBLISH_KEY", "publish-key")
        yield running


def _step(url: str) -> Any:
    [run] = RunStore(url).list_runs()
    with session_scope(url) as s:
        row = StepsRepository(s).get(run.id, "publish")
        assert row is not None
        return run, row


@pytest.mark.parametrize("server", [[400, 400, 400]], indirect=True)
def test_three_reexecutions_of_one_failed_run_present_the_same_key(
    dagster_instance: DagsterInstance, server: CallsServer
) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    _register(ONCE, url)
    job = build_reconstructable_job(
        "tests.orchestration_defs.test_call_identity",
        "publisher_job",
        reconstructable_args=(ONCE, url),  # type: ignore[arg-type]
    )
    with execute_job(job, dagster_instance, run_config={"inputs": {}}) as result:
        assert not result.success
        parent = result.run_id
    for expected in (False, False, True):
        options = ReexecutionOptions.from_failure(parent, dagster_instance)
        with execute_job(job, dagster_instance, reexecution_options=options) as result:
            assert result.success is expected
            parent = result.run_id
    run, row = _step(url)
    assert server.keys == [f"{run.id}:publish:1"] * 4
    assert run.status == "completed"
    # Attempt 4 produced the output the row keeps, under the one call number.
    assert (row.status, row.attempt, row.call_number) == ("completed", 4, 1)
    assert row.output == {"ok": True, "call": 4}


@pytest.mark.parametrize("server", [[503]], indirect=True)
def test_the_retry_policy_makes_a_new_call_with_a_new_key(
    dagster_instance: DagsterInstance, server: CallsServer
) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    _register(RETRIED, url)
    result = publisher_job(RETRIED, url).execute_in_process(
        run_config={"inputs": {}}, instance=dagster_instance, raise_on_error=False
    )
    assert result.success
    run, row = _step(url)
    assert server.keys == [f"{run.id}:publish:1", f"{run.id}:publish:2"]
    assert (row.attempt, row.call_number, row.output) == (2, 2, {"ok": True, "call": 2})


@pytest.mark.parametrize("server", [[503, 503]], indirect=True)
def test_an_agent_failing_twice_then_answering_is_called_three_times_once_per_key(
    dagster_instance: DagsterInstance, server: CallsServer
) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    three = RETRIED.replace("max_attempts: 2", "max_attempts: 3")
    _register(three, url)
    result = publisher_job(three, url).execute_in_process(
        run_config={"inputs": {}}, instance=dagster_instance, raise_on_error=False
    )
    assert result.success
    run, row = _step(url)
    assert server.keys == [f"{run.id}:publish:{n}" for n in (1, 2, 3)]
    assert (row.status, row.attempt, row.call_number) == ("completed", 3, 3)
    assert row.output == {"ok": True, "call": 3}
    failed = [e.payload for e in RunStore(url).run_detail(run.id).events if e.type == "step.failed"]
    assert [f["will_retry"] for f in failed] == [True, True]


@pytest.mark.parametrize("server", [[HANG]], indirect=True)
def test_a_timed_out_call_ends_before_its_retry_starts(
    dagster_instance: DagsterInstance, server: CallsServer
) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    _register(RETRIED, url)
    result = publisher_job(RETRIED, url).execute_in_process(
        run_config={"inputs": {}}, instance=dagster_instance, raise_on_error=False
    )
    assert result.success
    first, second = server.calls
    # The timeout closed the first call's connection, and the retry began only after that.
    assert first.closed_by_client and first.ended is not None
    assert first.ended <= second.started
    run, row = _step(url)
    assert (row.status, row.attempt) == ("completed", 2)
    failed = [e.payload for e in RunStore(url).run_detail(run.id).events if e.type == "step.failed"]
    assert [(f["kind"], f["will_retry"]) for f in failed] == [("timeout", True)]
