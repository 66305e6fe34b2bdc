"""One orchestration uses all seven named agents against a real local server that answers like
OpenAI (chat and images), Google's image API, n8n and a publishing target; a sandbox attack
fails only its step."""

from __future__ import annotations

import base64
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetKey, DagsterInstance, ExecuteInProcessResult, JobDefinition

from agent_resources.catalog import agent_catalog
from agent_resources.registry import agent_resources
from baton.store.service import RunStore
from orchestration_defs.compiler.job import build_job
from orchestration_defs.compiler.resources import BatonStoreResource
from orchestration_defs.language.library import load_text
from tests.fakes.http import FakeServer, Reply
from tests.helpers import PNG_BYTES, register, write_library
from tests.orchestration_defs.test_deliverables_and_secrets import (
    _dagster_text as dagster_text,
)
from tests.orchestration_defs.test_deliverables_and_secrets import (
    _dump_tables as dump_tables,
)

OPENAI_KEY = "sk-smoke" + uuid.uuid4().hex
GOOGLE_KEY = "AIzaSmoke" + uuid.uuid4().hex
N8N_KEY = "n8n-" + uuid.uuid4().hex
PUBLISH_KEY = "publish-" + uuid.uuid4().hex
PNG_B64 = base64.b64encode(PNG_BYTES).decode()

ALL_AGENTS = """
slug: all-agents
name: All agents
version: 1
inputs:
  prompt: {type: string, default: a lighthouse at dusk}
steps:
  - id: kpis
    agent: supabase-agent
    with: {query: region_totals, params: {start_month: "2025-01", end_month: "2025-03"}}
  - id: summary
    agent: summarizer
    with: {rows: "{{ steps.kpis.output.rows }}"}
  - id: publish
    agent: publisher
    with: {channel: finance-kpis, summary: "{{ steps.summary.output.summary }}"}
  - id: campaign
    agent: marketing-swarm
    with: {brief: "{{ steps.summary.output.summary }}"}
  - id: openai_art
    agent: image-generator-openai
    with: {prompt: "{{ inputs.prompt }}"}
  - id: google_art
    agent: image-generator-google
    with: {prompt: "{{ inputs.prompt }}"}
  - id: hero
    agent: image-orchestrator
    with: {prompt: "{{ inputs.prompt }}"}
  - id: report
    agent: echo
    with:
      summary: "{{ steps.summary.output.summary }}"
      campaign: "{{ steps.campaign.output }}"
      hero: "{{ steps.hero.output.choice }}"
      published: "{{ steps.publish.output.id }}"
      images: ["{{ steps.openai_art.output.provider }}", "{{ steps.google_art.output.provider }}"]
outputs:
  report: "{{ steps.report.output }}"
"""


def _compile(text: str, url: str) -> JobDefinition:
    spec, errors = load_text(
        textwrap.dedent(text), source="test.yaml", known_agents=set(agent_catalog())
    )
    assert spec is not None and not errors, [str(e) for e in errors]
    register(spec, url)
    return build_job(spec)


def _execute(job: JobDefinition, instance: DagsterInstance, url: str) -> ExecuteInProcessResult:
    resources: dict[str, Any] = {
        "baton_store": BatonStoreResource(database_url=url),
        **agent_resources(),
    }
    return job.execute_in_process(
        run_config={"inputs": {}, "baton_run_id": ""},
        instance=instance,
        resources=resources,
        raise_on_error=False,
    )


@pytest.fixture
def services(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeServer]:
    with FakeServer() as server:
        chat = {
            "choices": [{"message": {"role": "assistant", "content": "Revenue rose in EMEA."}}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 9, "total_tokens": 129},
        }
        server.route("POST", "/v1/chat/completions", lambda _r: Reply(200, chat))
        images = {"data": [{"b64_json": PNG_B64}]}
        server.route("POST", "/v1/images/generations", lambda _r: Reply(200, images))
        predictions = {"predictions": [{"bytesBase64Encoded": PNG_B64, "mimeType": "image/png"}]}
        server.route(
            "POST",
            "/v1beta/models/imagen-3.0-generate-002:predict",
            lambda _r: Reply(200, predictions),
        )
        server.route(
            "POST", "/webhook/marketing-swarm", lambda _r: Reply(202, {"executionId": "ex-7"})
        )
        done = {"id": "ex-7", "finished": True, "status": "success", "data": {"ideas": 3}}
        server.route("GET", "/api/v1/executions/ex-7", lambda _r: Reply(200, done))
        server.route("POST", "/publish", lambda _r: Reply(201, {"id": "post-1"}))
        for name, value in {
            "OPENAI_API_KEY": OPENAI_KEY,
            "OPENAI_BASE_URL": server.url + "/v1",
            "GOOGLE_API_KEY": GOOGLE_KEY,
            "GOOGLE_API_BASE": server.url,
            "N8N_BASE_URL": server.url,
            "N8N_API_KEY": N8N_KEY,
            "BATON_PUBLISH_URL": server.url,
            "BATON_PUBLISH_KEY": PUBLISH_KEY,
        }.items():
            monkeypatch.setenv(name, value)
        yield server


def test_one_orchestration_uses_all_seven_agents(
    dagster_instance: DagsterInstance, services: FakeServer
) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    result = _execute(_compile(ALL_AGENTS, url), dagster_instance, url)
    assert result.success
    store = RunStore(url)
    [run] = store.list_runs()
    assert run.status == "completed"
    report = run.outputs["report"]
    assert report["summary"] == "Revenue rose in EMEA."
    assert report["campaign"] == {"ideas": 3}
    assert report["hero"] == "image-generator-openai"
    assert report["published"] == "post-1"
    assert report["images"] == ["openai", "google"]
    detail = store.run_detail(run.id)
    assert {s.step_id: s.status for s in detail.steps} == dict.fromkeys(
        ["kpis", "summary", "publish", "campaign", "openai_art", "google_art", "hero", "report"],
        "completed",
    )
    payloads = [e.payload for e in detail.events if e.payload.get("step_id") == "summary"]
    usage = [p["usage"] for p in payloads if "usage" in p]
    assert any(u.get("total_tokens") == 129 for u in usage)
    # The image deliverables are in the asset catalog, linked to their run.
    for step in ("openai_art", "google_art", "hero"):
        event = dagster_instance.get_latest_materialization_event(
            AssetKey(["baton", "all-agents", step])
        )
        assert event is not None and event.run_id == result.run_id
        metadata = event.asset_materialization.metadata  # type: ignore[union-attr]
        assert metadata["orchestration_run_id"].value == str(run.id)
    paths = [d.asset_uri for d in store.deliverables(run.id) if d.type == "image"]
    assert len(paths) == 4  # openai, google, and both from the orchestrator
    assert all(Path(p.removeprefix("file://")).read_bytes() == PNG_BYTES for p in paths if p)
    sent = {r.path: r.headers for r in services.requests}
    assert sent["/webhook/marketing-swarm"]["x-n8n-api-key"] == N8N_KEY
    assert sent["/publish"]["x-api-key"] == PUBLISH_KEY
    [post] = services.calls("POST", "/publish")
    assert post.json() == {"channel": "finance-kpis", "summary": "Revenue rose in EMEA."}
    # The keys reached the services and nothing else: not the tables, logs, events or files.
    haystack = dump_tables(url) + dagster_text(
        dagster_instance, result.run_id, Path(dagster_instance.root_directory)
    )
    for key in (OPENAI_KEY, GOOGLE_KEY, N8N_KEY, PUBLISH_KEY):
        assert key not in haystack


ATTACKER = """
slug: attacker
type: function
description: A function agent whose code tries to fork forever.
config:
  code: |
    def run(input, ctx):
        g = [c for c in ().__class__.__base__.__subclasses__()
             if c.__name__ == "_wrap_close"][0].__init__.__globals__
        while True:
            g["fork"]()
limits: {timeout_seconds: 5, cpu_seconds: 2}
"""

ATTACKED = """
slug: attacked
name: Attacked
version: 1
steps:
  - id: bomb
    agent: attacker
    retry: {max_attempts: 3}
  - id: innocent
    agent: echo
    with: {fine: true}
  - id: after_bomb
    agent: echo
    with: {got: "{{ steps.bomb.output }}"}
"""


def test_a_sandbox_attack_fails_only_its_own_step(
    dagster_instance: DagsterInstance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATON_AGENTS_DIR", str(write_library(tmp_path, {"a.yaml": ATTACKER})))
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    result = _execute(_compile(ATTACKED, url), dagster_instance, url)
    assert not result.success
    store = RunStore(url)
    [run] = store.list_runs()
    steps = {s.step_id: s for s in store.run_detail(run.id).steps}
    assert steps["innocent"].status == "completed"
    assert steps["bomb"].status == "failed"
    assert steps["bomb"].attempt == 1, "a sandbox refusal is not retried"
    assert "creating processes is not allowed (os.fork)" in steps["bomb"].error["message"]
    assert steps["after_bomb"].status != "completed"
    # The worker (this very process) lives on: a second run in it works.
    monkeypatch.delenv("BATON_AGENTS_DIR")
    again = ATTACKED.replace("agent: attacker", "agent: echo").replace("version: 1", "version: 2")
    job = _compile(again, url)
    assert _execute(job, dagster_instance, url).success
