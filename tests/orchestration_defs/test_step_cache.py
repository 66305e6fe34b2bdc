"""Step caching on a real Dagster instance (SQLite and Postgres): the shipped ``publisher`` (an
api agent) calls a local server that counts the calls, so a hit is seen as a call not made."""

from __future__ import annotations

import json
import textwrap
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from dagster import DagsterInstance, Definitions, JobDefinition
from sqlalchemy import update

from agent_resources.catalog import agent_catalog
from agent_resources.registry import agent_resources
from baton.api import views
from baton.cli.main import main
from baton.db.engine import session_scope
from baton.db.models import StepCacheEntry, utcnow
from baton.lifecycle import Lifecycle
from baton.settings import get_settings
from baton.store.cache import CacheFilter
from baton.store.service import RunStore
from orchestration_defs.compiler.job import build_job
from orchestration_defs.compiler.resources import BatonStoreResource
from orchestration_defs.language.library import load_text
from tests.baton.api.test_metrics import client_for, scrape, value
from tests.helpers import CALLS, ScriptedAgent, compile_text, execute, register
from tests.orchestration_defs.calls_server import CallsServer

CACHED = """
slug: cached-publish
name: Cached publish
version: 1
inputs:
  summary: {type: string, required: true}
steps:
  - id: publish
    agent: publisher
    cache: {ttl: 1h}
    with: {channel: news, summary: "{{ inputs.summary }}"}
"""

# `publish` is cached; `notify` (not cached) fails once, so the run is retried from it.
THEN_FAIL = """
slug: cached-then-fail
name: Cached then fail
version: 1
steps:
  - id: publish
    agent: publisher
    cache: {ttl: 1h}
    with: {channel: news, summary: once}
  - id: notify
    agent: publisher
    needs: [publish]
    with: {channel: ops, summary: "{{ steps.publish.output.call }}"}
"""


DELIVERING = """
slug: cached-picture
name: Cached picture
version: 1
steps:
  - id: draw
    agent: echo
    cache: {ttl: 1h}
    with: {subject: cat}
"""


@pytest.fixture
def server(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[CallsServer]:
    with CallsServer(getattr(request, "param", [])).running() as running:
        monkeypatch.setenv("BATON_PUBLISH_URL", running.url)
        monkeypatch.setenv("BATON_PUBLISH_KEY", "publish-key")
        yield running


def _job(text: str, url: str) -> JobDefinition:
    spec, errors = load_text(
        textwrap.dedent(text), source="test.yaml", known_agents=set(agent_catalog())
    )
    assert spec is not None, errors
    register(spec, url)
    resources: dict[str, Any] = {
        "baton_store": BatonStoreResource(database_url=url),
        **agent_resources(),
    }
    return Definitions(jobs=[build_job(spec)], resources=resources).get_job_def(spec.job_name)


def _run(job: JobDefinition, instance: DagsterInstance, summary: str) -> uuid.UUID:
    before = {r.id for r in RunStore(instance.baton_db_url).list_runs()}  # type: ignore[attr-defined]
    result = job.execute_in_process(
        run_config={"inputs": {"summary": summary}}, instance=instance, raise_on_error=False
    )
    assert result.success
    after = {r.id for r in RunStore(instance.baton_db_url).list_runs()}  # type: ignore[attr-defined]
    [run_id] = after - before
    return run_id


def _publish(url: str, run_id: uuid.UUID) -> tuple[Any, list[str]]:
    detail = RunStore(url).run_detail(run_id)
    [step] = [s for s in detail.steps if s.step_id == "publish"]
    return step, [e.type for e in detail.events]


def test_the_same_input_is_answered_from_the_cache_without_a_call(
    dagster_instance: DagsterInstance, server: CallsServer
) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    job = _job(CACHED, url)
    first = _run(job, dagster_instance, "hello")
    second = _run(job, dagster_instance, "hello")

    assert len(server.calls) == 1  # the second run made no agent call
    step, events = _publish(url, first)
    assert (step.cache, step.output) == ("miss", {"ok": True, "call": 1})
    assert "step.cache_hit" not in events
    step, events = _publish(url, second)
    assert (step.status, step.cache, step.output) == ("completed", "hit", {"ok": True, "call": 1})
    assert "step.cache_hit" in events and "step.completed" in events
    detail = RunStore(url).run_detail(second)
    assert detail.run.status == "completed"
    [hit] = [e for e in detail.events if e.type == "step.cache_hit"]
    [entry] = RunStore(url).cache.entries(CacheFilter())
    assert hit.payload["cache_entry_id"] == str(entry.id)
    assert hit.payload["age_seconds"] >= 0
    assert (entry.orchestration, entry.step_id, entry.run_id) == (
        "cached-publish",
        "publish",
        first,
    )

    # Another input is another key: a miss, and a call.
    third = _run(job, dagster_instance, "other")
    assert len(server.calls) == 2
    assert _publish(url, third)[0].cache == "miss"

    samples = scrape(client_for(url))
    assert value(samples, "baton_step_cache_total", agent="publisher", result="hit") == 1
    assert value(samples, "baton_step_cache_total", agent="publisher", result="miss") == 2


def test_an_expired_or_invalidated_entry_is_a_miss(
    dagster_instance: DagsterInstance, server: CallsServer
) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    job = _job(CACHED, url)
    _run(job, dagster_instance, "hello")
    with session_scope(url) as s:  # written two hours ago: past the step's ttl of 1h
        s.execute(update(StepCacheEntry).values(created_at=utcnow() - timedelta(hours=2)))
    expired = _run(job, dagster_instance, "hello")
    assert len(server.calls) == 2
    assert _publish(url, expired)[0].cache == "miss"
    # The miss replaced the expired entry with a fresh one: the next run hits.
    assert _publish(url, _run(job, dagster_instance, "hello"))[0].cache == "hit"
    assert len(server.calls) == 2

    removed = RunStore(url).cache.invalidate(CacheFilter(agent="publisher"))
    assert removed == 1
    invalidated = _run(job, dagster_instance, "hello")
    assert len(server.calls) == 3
    assert _publish(url, invalidated)[0].cache == "miss"


@pytest.mark.parametrize("server", [[200, 400]], indirect=True)
def test_a_memoized_reexecution_is_not_a_cache_hit(
    dagster_instance: DagsterInstance, server: CallsServer
) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    job = _job(THEN_FAIL, url)
    result = job.execute_in_process(
        run_config={"inputs": {}}, instance=dagster_instance, raise_on_error=False
    )
    assert not result.success  # notify's 400
    [run] = RunStore(url).list_runs()
    segment = Lifecycle(RunStore(url), None, via="test").prepare_retry(run.id, "notify", by="ops")
    again = job.execute_in_process(
        run_config={"inputs": {}},
        instance=dagster_instance,
        tags=segment.segment.all_tags,
        raise_on_error=False,
    )
    assert again.success
    assert len(server.calls) == 3  # publish once, notify twice
    step, events = _publish(url, run.id)
    assert step.cache == "miss"  # its memo, not the cache, answered the re-execution
    assert "step.cache_hit" not in events


def test_an_answer_with_deliverables_is_not_cached(dagster_instance: DagsterInstance) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    _, job = compile_text(DELIVERING, url)
    key = uuid.uuid4().hex
    for _ in range(2):
        result = execute(job, dagster_instance, url, agent=ScriptedAgent(key=key, deliver=True))
        assert result.success
    assert CALLS[key]["draw"] == 2  # a hit would have shown a step without its picture
    steps = [s for r in RunStore(url).list_runs() for s in RunStore(url).run_detail(r.id).steps]
    assert [s.cache for s in steps] == ["miss", "miss"]
    assert RunStore(url).cache.entries(CacheFilter()) == []
    assert len(RunStore(url).deliverables(RunStore(url).list_runs()[0].id)) == 1


def test_runs_show_and_the_api_say_which_step_the_cache_answered(
    dagster_instance: DagsterInstance,
    server: CallsServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    job = _job(CACHED, url)
    first = _run(job, dagster_instance, "hello")
    second = _run(job, dagster_instance, "hello")
    monkeypatch.setenv("BATON_DATABASE_URL", url)
    get_settings.cache_clear()

    for run_id, expected in ((first, "miss"), (second, "hit")):
        assert main(["runs", "show", str(run_id)]) == 0
        [line] = [x for x in capsys.readouterr().out.splitlines() if x.startswith("  publish ")]
        assert f"cache: {expected}" in line
        assert main(["runs", "show", str(run_id), "--json"]) == 0
        [step] = json.loads(capsys.readouterr().out)["steps"]
        assert step["cache"] == expected
        [row] = RunStore(url).run_detail(run_id).steps
        assert views.step(row).cache == expected
