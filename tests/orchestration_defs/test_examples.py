"""The shipped examples without child runs, each end to end on a real Dagster instance: the real
catalog agents (offline providers), a real local server as the publishing target and n8n, the
approvals decided here and the runs resumed through the approval sensor's own logic.

The examples that start child runs (finance-manager, finance-review) are in
test_examples_children.py; `make demo` runs finance-manager in a deployment
(tests/e2e/test_demo.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetKey, DagsterInstance, JobDefinition

from agent_resources.contracts import agent_input_checks
from agent_resources.registry import agent_resources
from baton.approvals import ApprovalError, Approvals
from baton.settings import SHIPPED_LIBRARY
from baton.store.service import RunStore
from orchestration_defs.compiler.compensation_job import build_compensation_job
from orchestration_defs.compiler.job import build_job
from orchestration_defs.compiler.resources import BatonStoreResource
from orchestration_defs.language.library import load_file
from tests.checkpoint_helpers import launch, pending, tick, users
from tests.fakes.http import FakeServer, Reply, Request
from tests.helpers import register

PUBLISH_KEY = "publish-" + uuid.uuid4().hex


def _job(name: str, url: str) -> JobDefinition:
    loaded, errors = load_file(Path(SHIPPED_LIBRARY) / name, known_agents=agent_input_checks())
    assert loaded is not None and not errors, [str(e) for e in errors]
    register(loaded.spec, url)
    return build_job(loaded.spec)


def _start(job: JobDefinition, instance: DagsterInstance, url: str, **inputs: Any) -> uuid.UUID:
    before = {r.id for r in RunStore(url).list_runs(limit=1000)}
    result = job.execute_in_process(
        run_config={"inputs": inputs, "baton_run_id": ""},
        instance=instance,
        resources={"baton_store": BatonStoreResource(database_url=url), **agent_resources()},
        raise_on_error=False,
    )
    assert result.success, "a run that pauses at its checkpoint still ends successfully"
    [run_id] = [r.id for r in RunStore(url).list_runs(limit=1000) if r.id not in before]
    return run_id


def _resume(job: JobDefinition, instance: DagsterInstance, url: str) -> None:
    """Launch what the approval sensor asks for, as the daemon would."""
    [request] = tick(instance, url, job)
    assert launch(job, instance, url, request, resources=agent_resources()).success


@pytest.fixture
def target(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeServer]:
    """A publishing target on 127.0.0.1 that the publisher agent posts to."""
    with FakeServer() as server:

        def accept(request: Request) -> Reply:
            return Reply(201, {"id": f"post-{len(server.calls('POST', '/publish'))}"})

        server.route("POST", "/publish", accept)
        monkeypatch.setenv("BATON_PUBLISH_URL", server.url)
        monkeypatch.setenv("BATON_PUBLISH_KEY", PUBLISH_KEY)
        yield server


def _published(server: FakeServer) -> list[Any]:
    posts = server.calls("POST", "/publish")
    assert all(p.headers["x-api-key"] == PUBLISH_KEY for p in posts)
    return [p.json() for p in posts]


def test_kpi_tracking_publishes_the_summary_as_finance_edited_it(
    dagster_instance: DagsterInstance, target: FakeServer
) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    users(url, ("fiona", ["finance"]), ("sam", ["sales"]))
    job = _job("kpi-tracking.yaml", url)
    run_id = _start(job, dagster_instance, url, start_month="2025-01", end_month="2025-03")
    store = RunStore(url)
    assert store.get_run(run_id).status == "awaiting_approval"
    approval = pending(url, run_id)
    assert approval.prompt == "Publish the KPI summary for 2025-01 to 2025-03?"
    shown = approval.show
    assert shown["period"] == "2025-01 to 2025-03"
    assert shown["summary"].startswith("4 rows")
    headline = shown["headline"]
    totals = store.run_detail(run_id).steps[0].output["rows"]
    assert headline["revenue"] == round(sum(r["revenue"] for r in totals), 2)
    assert headline["new_customers"] == sum(r["new_customers"] for r in totals)
    assert target.requests == [], "nothing is published before finance decides"
    with pytest.raises(ApprovalError, match="approver"):
        Approvals(store).decide(approval.id, user="sam", decision="continue")
    edited = "Q1 2025: revenue grew in every region; APAC churn needs a look."
    Approvals(store).decide(
        approval.id, user="fiona", decision="continue", modifications={"summary": edited}
    )
    _resume(job, dagster_instance, url)
    run = store.get_run(run_id)
    assert run.status == "completed"
    assert run.outputs["summary"] == edited
    assert run.outputs["edited"] is True
    assert run.outputs["approved_by"] == "fiona"
    assert run.outputs["published"] == {"id": "post-1"}
    assert run.outputs["months"] == 12  # 3 months x 4 regions
    [post] = _published(target)
    assert post == {
        "channel": "finance-kpis",
        "period": "2025-01 to 2025-03",
        "summary": edited,
        "headline": headline,
        "approved_by": "fiona",
    }


def test_kpi_tracking_publishes_offline_as_a_dry_run(
    dagster_instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BATON_PUBLISH_URL", raising=False)
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    users(url, ("fiona", ["finance"]))
    job = _job("kpi-tracking.yaml", url)
    run_id = _start(job, dagster_instance, url)
    approval = pending(url, run_id)
    Approvals(RunStore(url)).decide(approval.id, user="fiona", decision="continue")
    _resume(job, dagster_instance, url)
    run = RunStore(url).get_run(run_id)
    assert run.status == "completed"
    assert run.outputs["edited"] is False
    assert run.outputs["summary"] == approval.show["summary"]
    published = run.outputs["published"]
    assert (published["dry_run"], published["sent"]) == (True, False)
    assert published["payload"]["period"] == "2025-07 to 2025-12"


def test_an_aborted_kpi_review_publishes_nothing(
    dagster_instance: DagsterInstance, target: FakeServer
) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    users(url, ("fiona", ["finance"]))
    job = _job("kpi-tracking.yaml", url)
    run_id = _start(job, dagster_instance, url)
    approval = pending(url, run_id)
    Approvals(RunStore(url)).decide(
        approval.id, user="fiona", decision="abort", comment="numbers not final"
    )
    for request in tick(dagster_instance, url, job):  # an abort launches nothing
        launch(job, dagster_instance, url, request, resources=agent_resources())
    assert RunStore(url).get_run(run_id).status == "aborted"
    assert target.requests == []


def test_content_pipeline_summarizes_illustrates_and_publishes_the_approved_post(
    dagster_instance: DagsterInstance, target: FakeServer
) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    users(url, ("ann", ["editors"]))
    job = _job("content-pipeline.yaml", url)
    run_id = _start(
        job, dagster_instance, url, topic="release notes", sections=["a", "b"], teaser=True
    )
    store = RunStore(url)
    approval = pending(url, run_id)
    assert approval.prompt == "Publish 'Release Notes'?"
    show = approval.show
    assert show["outline"] == ["a", "b"]
    assert show["body"] and show["image"]["name"] == "image-1.png"
    steps = {s.step_id: s.status for s in store.run_detail(run_id).steps}
    assert steps["teaser"] == "completed" and steps["publish_teaser"] == "completed"
    Approvals(store).decide(
        approval.id, user="ann", decision="continue", modifications={"title": "Release notes"}
    )
    _resume(job, dagster_instance, url)
    run = store.get_run(run_id)
    assert run.status == "completed"
    assert (run.outputs["title"], run.outputs["sections"]) == ("Release notes", 2)
    assert run.outputs["published"] == {"id": "post-1"}
    [post] = _published(target)
    assert post["channel"] == "blog" and post["title"] == "Release notes"
    assert post["body"] == show["body"] and post["image"] == show["image"]
    assert post["approved_by"] == "ann"
    # The illustration is a deliverable, in Dagster's asset catalog with its run.
    [image] = [d for d in store.deliverables(run_id) if d.type == "image"]
    assert image.step_id == "illustration"
    key = AssetKey(["baton", "content-pipeline", "illustration"])
    assert dagster_instance.get_latest_materialization_event(key) is not None


@pytest.fixture
def n8n(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeServer]:
    """The marketing swarm's n8n: the webhook answers an execution id, the status finishes."""
    with FakeServer() as server:
        server.route(
            "POST", "/webhook/marketing-swarm", lambda _r: Reply(200, {"executionId": "7"})
        )
        campaign = {
            "headline": "Approvals in your pocket",
            "copy": "Decide from anywhere; Baton resumes the run.",
            "image_prompt": "a phone with an approve button at dawn over a harbour",
        }
        done = {"id": "7", "finished": True, "status": "success", "data": campaign}
        server.route("GET", "/api/v1/executions/7", lambda _r: Reply(200, done))
        monkeypatch.setenv("N8N_BASE_URL", server.url)
        yield server


def test_marketing_campaign_runs_the_swarm_both_image_generators_and_an_approval(
    dagster_instance: DagsterInstance, target: FakeServer, n8n: FakeServer
) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    users(url, ("mia", ["marketing"]))
    job = _job("marketing-campaign.yaml", url)
    run_id = _start(job, dagster_instance, url)
    store = RunStore(url)
    [swarm_call] = n8n.calls("POST", "/webhook/marketing-swarm")
    assert swarm_call.json()["channels"] == ["email", "linkedin"]
    approval = pending(url, run_id)
    assert approval.prompt == "Launch the campaign 'Approvals in your pocket'?"
    show = approval.show
    assert show["chosen"] == "image-generator-openai"
    assert set(show["images"]) == {"image-generator-openai", "image-generator-google"}
    Approvals(store).decide(
        approval.id,
        user="mia",
        decision="continue",
        modifications={"chosen": "image-generator-google"},
    )
    _resume(job, dagster_instance, url)
    run = store.get_run(run_id)
    assert run.status == "completed"
    assert run.outputs["image"] == "image-generator-google"
    [post] = _published(target)
    assert post["channel"] == "marketing"
    assert post["headline"] == "Approvals in your pocket"
    assert post["image"] == "image-generator-google" and post["approved_by"] == "mia"
    # Both generators' images are deliverables of the hero step.
    names = sorted(d.name for d in store.deliverables(run_id) if d.type == "image")
    assert len(names) == 2 and all(n.startswith("image-generator-") for n in names)


def test_an_aborted_announcement_takes_back_what_it_published(
    dagster_instance: DagsterInstance, target: FakeServer
) -> None:
    from baton.compensation import Compensations
    from sensors.compensation import evaluate

    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    users(url, ("erin", ["editors"]))
    job = _job("announcement.yaml", url)
    loaded, _ = load_file(
        Path(SHIPPED_LIBRARY) / "announcement.yaml", known_agents=agent_input_checks()
    )
    assert loaded is not None
    compensation_job = build_compensation_job(loaded.spec)
    assert compensation_job is not None
    run_id = _start(job, dagster_instance, url, title="Launch day")
    Approvals(RunStore(url)).decide(
        pending(url, run_id).id, user="erin", decision="abort", comment="not yet"
    )
    assert tick(dagster_instance, url, job) == []  # the abort is carried out; nothing resumes
    # An abort decision launches nothing itself: the compensation sensor does.
    compensations = Compensations(RunStore(url))
    [request], waiting = evaluate(compensations, {compensation_job.name})
    assert waiting == []
    launch(compensation_job, dagster_instance, url, request, resources=agent_resources())
    published = _published(target)
    assert [(p["channel"], p.get("action")) for p in published] == [
        ("blog", None),
        ("newsletter", None),
        ("newsletter", "retract"),
        ("blog", "unpublish"),
    ]
    assert published[3]["published"] == {"id": "post-1"}
    run = RunStore(url).get_run(run_id)
    assert (run.status, run.compensation) == ("aborted", "completed")
    keys = [r.headers["idempotency-key"] for r in target.calls("POST", "/publish")]
    assert keys[2:] == [f"{run_id}:newsletter:compensate:1", f"{run_id}:blog:compensate:1"]
