"""The webhook sensor on a real Dagster instance: stored webhooks start runs of the
orchestrations whose triggers match, once per webhook, on SQLite and on Postgres."""

from __future__ import annotations

import json
from typing import Any

import pytest
from dagster import (
    DagsterInstance,
    JobDefinition,
    RunRequest,
    SensorResult,
    SkipReason,
    build_sensor_context,
)
from fastapi.testclient import TestClient
from pydantic import SecretStr

from agent_resources.resources import EchoAgentResource
from baton.api.app import create_app
from baton.db.models import utcnow
from baton.doctor import GRACE, waiting_on_system
from baton.settings import Settings
from baton.store.service import RunStore
from baton.webhooks.inbox import Inbox
from baton.webhooks.signing import headers
from baton.webhooks.sources import Sources
from orchestration_defs.compiler.resources import BatonStoreResource
from sensors.webhooks import build_webhook_sensor, webhook_run_id
from tests.checkpoint_helpers import launch
from tests.helpers import compile_text

TRIGGERED = """
slug: pr-review
name: PR review
version: 1
organization: acme
inputs:
  title: {type: string, required: true}
  number: {type: integer, default: 0}
triggers:
  - webhook:
      source: github
      filter: "{{ body.action == 'opened' }}"
      inputs:
        title: "{{ body.pr.title }}"
        number: "{{ body.pr.number }}"
steps:
  - id: review
    agent: echo
    with: {title: "{{ inputs.title }}", number: "{{ inputs.number }}"}
outputs:
  title: "{{ steps.review.output.title }}"
"""

# Same source, another organization: a source only starts its own organization's runs.
OTHER_ORG = """
slug: other-org
name: Other org
version: 1
organization: elsewhere
triggers:
  - webhook: {source: github}
steps:
  - id: a
    agent: echo
"""

OPENED = {"action": "opened", "pr": {"title": "Fix the docs", "number": 42}}


class Harness:
    """A Dagster instance, Baton's tables, a source and the compiled job."""

    def __init__(self, instance: DagsterInstance, url: str) -> None:
        self.instance = instance
        self.url = url
        self.settings = Settings(database_url=SecretStr(url))
        _, self.job = compile_text(TRIGGERED, url)
        _, self.other = compile_text(OTHER_ORG, url)
        self.secret = Sources(url, self.settings).add("github", "acme")
        self.inbox = Inbox(url)

    def store(self, webhook_id: str, body: Any) -> None:
        assert self.inbox.accept(
            source="github", organization="acme", webhook_id=webhook_id, body=body
        )

    def tick(
        self, cursor: str | None = None, job_names: list[str] | None = None
    ) -> tuple[list[RunRequest], str | None, str]:
        names = [self.job.name, self.other.name] if job_names is None else job_names
        sensor = build_webhook_sensor(names)
        context = build_sensor_context(
            instance=self.instance,
            cursor=cursor,
            resources={"baton_store": BatonStoreResource(database_url=self.url)},
        )
        result = sensor(context)
        if isinstance(result, SkipReason):
            return [], cursor, result.skip_message or ""
        assert isinstance(result, SensorResult)
        skip = result.skip_reason.skip_message if result.skip_reason else ""
        return list(result.run_requests or []), result.cursor, skip or ""

    def run(self, request: RunRequest, job: JobDefinition | None = None) -> Any:
        resources = {"agent_echo": EchoAgentResource(slug="echo")}
        return launch(job or self.job, self.instance, self.url, request, resources=resources)


@pytest.fixture
def harness(dagster_instance: DagsterInstance) -> Harness:
    return Harness(dagster_instance, dagster_instance.baton_db_url)  # type: ignore[attr-defined]


def test_a_matching_webhook_starts_one_run_with_inputs_from_the_body(harness: Harness) -> None:
    harness.store("msg_1", OPENED)
    [request], cursor, _ = harness.tick()
    assert request.run_key == "webhook-github-msg_1-pr-review"
    assert request.job_name == "pr_review"
    run_id = webhook_run_id("github", "msg_1", "pr-review")
    # The run travels in the tags (segments.RUN_TAG), never in the launchpad's run config.
    assert request.run_config == {"inputs": {"title": "Fix the docs", "number": 42}}
    assert request.tags["baton/run_id"] == str(run_id)
    assert request.tags["baton/segment"] == run_id.hex
    assert request.tags["baton/webhook_id"] == "msg_1"
    created = RunStore(harness.url).get_run(run_id)
    assert created.status == "pending" and created.created_by == "webhook:github"
    assert harness.run(request).success
    run = RunStore(harness.url).get_run(run_id)
    assert run.status == "completed" and run.outputs == {"title": "Fix the docs"}
    [item] = harness.inbox.list()
    assert item.status == "processed"
    assert harness.tick(cursor)[0] == []


def test_a_tick_evaluated_again_asks_for_the_same_run_and_creates_no_second(
    harness: Harness,
) -> None:
    harness.store("msg_2", OPENED)
    first, _, _ = harness.tick()
    again, _, _ = harness.tick()  # the cursor was never stored: a crashed tick
    assert [r.run_key for r in again] == [r.run_key for r in first]
    assert again[0].run_config == first[0].run_config
    assert len(RunStore(harness.url).list_runs(limit=100)) == 1


def test_the_filter_and_templates_decide_and_say_why(harness: Harness) -> None:
    harness.store("msg_closed", {"action": "closed", "pr": {"title": "x", "number": 1}})
    harness.store("msg_no_pr", {"action": "opened"})
    harness.store("msg_bad_type", {"action": "opened", "pr": {"title": "x", "number": "many"}})
    requests, cursor, skip = harness.tick()
    assert requests == [] and "matched no trigger" in skip
    items = {i.webhook_id: i for i in harness.inbox.list()}
    assert {i.status for i in items.values()} == {"ignored"}
    assert cursor == str(max(i.id for i in items.values()))
    assert RunStore(harness.url).list_runs(limit=10) == []


def test_notes_explain_ignored_webhooks(harness: Harness) -> None:
    from sqlalchemy import select

    from baton.db.engine import session_scope
    from baton.db.models import WebhookInbox

    harness.store("msg_closed", {"action": "closed"})
    harness.store("msg_no_pr", {"action": "opened"})
    harness.tick()
    with session_scope(harness.url) as s:
        results = {r.webhook_id: r.result for r in s.scalars(select(WebhookInbox))}
    assert results["msg_closed"]["notes"] == ["pr-review: filter is false"]
    assert "pr" in results["msg_no_pr"]["notes"][0]
    assert results["msg_no_pr"]["run_keys"] == []


def test_nothing_stored_is_a_skip_with_a_reason(harness: Harness) -> None:
    requests, _, skip = harness.tick()
    assert requests == [] and skip == "no new webhooks in the inbox"


def test_webhooks_stored_while_the_sensor_was_down_are_all_processed(harness: Harness) -> None:
    for n in range(5):
        harness.store(f"msg_down_{n}", {"action": "opened", "pr": {"title": f"t{n}", "number": n}})
    requests, cursor, _ = harness.tick()
    assert len(requests) == 5 and len({r.run_key for r in requests}) == 5
    assert harness.tick(cursor)[0] == []


def test_a_source_starts_only_runs_of_its_organization(harness: Harness) -> None:
    harness.store("msg_org", OPENED)
    requests, _, _ = harness.tick()
    assert [r.job_name for r in requests] == ["pr_review"]  # not other_org


def test_end_to_end_posted_three_times_through_the_api_starts_exactly_one_run(
    harness: Harness,
) -> None:
    body = json.dumps(OPENED).encode()
    signed = headers(harness.secret, "msg_e2e", body)
    with TestClient(create_app(harness.settings)) as client:
        codes = [
            client.post("/webhooks/github", content=body, headers=signed).status_code
            for _ in range(3)
        ]
    assert codes == [202, 200, 200]
    requests, cursor, _ = harness.tick()
    assert len(requests) == 1
    assert harness.run(requests[0]).success
    assert harness.tick(cursor)[0] == []
    runs = RunStore(harness.url).list_runs(limit=100)
    assert [(r.orchestration, r.status) for r in runs] == [("pr-review", "completed")]
    dagster_runs = harness.instance.get_runs()
    assert len(dagster_runs) == 1


def test_definitions_include_the_webhook_and_delivery_sensors(harness: Harness) -> None:
    from sensors.definitions import sensor_definitions

    names = {s.name for s in sensor_definitions([harness.job]).sensors}
    assert {"baton_webhook_sensor", "webhook_delivery_sensor"} <= names


def test_a_webhook_for_a_job_the_location_lacks_waits_and_says_why(harness: Harness) -> None:
    harness.store("msg_w", OPENED)
    requests, cursor, skip = harness.tick(job_names=[harness.other.name])
    assert requests == [] and "wait for a job the code location does not have" in skip
    [item] = [i for i in harness.inbox.list() if i.webhook_id == "msg_w"]
    assert item.status == "pending"
    assert item.result["waiting"] == ["pr-review: job 'pr_review' is not in the code location"]
    with RunStore(harness.url).session() as s:
        [waiting] = [
            w for w in waiting_on_system(s, now=utcnow() + GRACE * 2) if w.kind == "webhook"
        ]
    assert waiting.id == "github/msg_w" and "pr_review" in waiting.reason
    # The job is back: the webhook starts its run once, though it is below the cursor.
    [request], cursor, _ = harness.tick(cursor)
    assert request.run_key == "webhook-github-msg_w-pr-review"
    assert harness.run(request).success
    assert harness.tick(cursor)[0] == []


QUADRATIC = """
slug: quadratic
name: Quadratic
version: 1
organization: acme
triggers:
  - webhook:
      source: github
      filter: "{% for a in body.xs %}{% for b in body.xs %}{% endfor %}{% endfor %}true"
steps:
  - id: a
    agent: echo
"""


def test_a_trigger_whose_template_explodes_on_a_body_is_ignored_and_the_tick_goes_on(
    harness: Harness,
) -> None:
    from sqlalchemy import select

    from baton.db.engine import session_scope
    from baton.db.models import WebhookInbox

    _, quadratic = compile_text(QUADRATIC, harness.url)
    harness.store("msg_bomb", {"action": "closed", "xs": list(range(100_000))})
    harness.store("msg_good", OPENED)
    requests, _, _ = harness.tick(job_names=[harness.job.name, quadratic.name])
    assert [r.tags["baton/webhook_id"] for r in requests] == ["msg_good"]
    with session_scope(harness.url) as s:
        results = {r.webhook_id: r.result for r in s.scalars(select(WebhookInbox))}
    [note] = [n for n in results["msg_bomb"]["notes"] if n.startswith("quadratic")]
    assert "filter: template exceeded" in note
