"""``GET /metrics`` after real runs on a real Dagster instance, on SQLite and Postgres."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dagster import DagsterInstance
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text, update

from baton.api import metrics
from baton.api.app import create_app
from baton.approvals import Approvals
from baton.db.engine import session_scope
from baton.db.models import HumanApproval, OrchestrationStep
from baton.settings import Settings
from baton.store.service import RunStore
from orchestration_defs.language.library import load_text
from tests.checkpoint_helpers import launch, pending, start, tick, users
from tests.helpers import ScriptedAgent, compile_text, register

FLOW = """
slug: metered
name: Metered
version: 1
steps:
  - id: draft
    agent: echo
    retry: {max_attempts: 3}
    with: {title: "draft"}
  - id: review
    checkpoint:
      prompt: "Publish?"
      show: "{{ steps.draft.output }}"
      approvers: [editors]
  - id: publish
    agent: echo
    with: {post: "{{ steps.review.output.value }}"}
"""

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient) -> Samples:
    """Every sample of ``/metrics`` by (name, labels), parsed by Prometheus' own parser."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def client_for(url: str) -> TestClient:
    return TestClient(create_app(Settings(database_url=url)))  # type: ignore[arg-type]


def _demo(instance: DagsterInstance, url: str) -> tuple[uuid.UUID, Any]:
    """One run decided and completed (draft failed once), one still waiting."""
    users(url, ("ann", ["editors"]))
    _, job = compile_text(FLOW, url)
    key = uuid.uuid4().hex
    agent = ScriptedAgent(key=key, fail={"draft": 1})
    done = start(job, instance, url, agent=agent)
    Approvals(RunStore(url)).decide(pending(url, done).id, user="ann", decision="continue")
    [request] = tick(instance, url, job)
    assert launch(job, instance, url, request, resources={"agent_echo": agent}).success
    assert RunStore(url).get_run(done).status == "completed"
    waiting = start(job, instance, url, agent=ScriptedAgent(key=uuid.uuid4().hex))
    return waiting, job


def test_metrics_show_real_values_after_a_demo_run(dagster_instance: DagsterInstance) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    _demo(dagster_instance, url)
    samples = scrape(client_for(url))

    assert value(samples, "baton_metrics_database_up") == 1
    run = {"organization": "global", "orchestration": "metered"}
    assert value(samples, "baton_runs", **run, status="completed") == 1
    assert value(samples, "baton_runs", **run, status="awaiting_approval") == 1
    # draft ran in both runs, publish in one: three agent steps with a duration.
    assert value(samples, "baton_step_duration_seconds_count", agent="echo") == 3
    assert value(samples, "baton_step_duration_seconds_bucket", agent="echo", le="+Inf") == 3
    assert value(samples, "baton_step_duration_seconds_sum", agent="echo") >= 0
    assert value(samples, "baton_step_retries_total", agent="echo") == 1
    assert value(samples, "baton_approvals_pending", organization="global") == 1
    assert value(samples, "baton_approval_wait_seconds_count") == 1
    assert value(samples, "baton_approval_wait_seconds_sum") > 0


def test_a_pending_approval_past_its_deadline_is_counted_overdue(world: Any) -> None:
    _, approval_id = world.waiting_run()
    _, later = world.waiting_run()
    samples = scrape(world.client)
    assert value(samples, "baton_approvals_overdue", organization="acme") == 0
    with session_scope(world.settings.db_url) as s:
        s.execute(
            update(HumanApproval)
            .where(HumanApproval.id == uuid.UUID(approval_id))
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=5))
        )
    samples = scrape(world.client)
    assert value(samples, "baton_approvals_overdue", organization="acme") == 1
    assert value(samples, "baton_approvals_pending", organization="acme") == 2
    Approvals(world.store).decide(uuid.UUID(later), user="acme-approver", decision="abort")
    assert value(scrape(world.client), "baton_approvals_overdue", organization="acme") == 1


def test_histogram_buckets_are_cumulative_and_placed_by_duration(sqlite_db: str) -> None:
    spec, _ = load_text(FLOW, source="t.yaml", known_agents={"echo"})
    assert spec is not None
    register(spec, sqlite_db)
    store = RunStore(sqlite_db)
    run_id = store.create_run(organization="global", slug="metered", version=1, inputs={})
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with session_scope(sqlite_db) as s:
        for step_id, seconds in (("a", 0.3), ("b", 7), ("c", 4000)):
            s.add(
                OrchestrationStep(
                    run_id=run_id,
                    step_id=step_id,
                    agent="echo",
                    status="completed",
                    attempt=1,
                    started_at=t0,
                    finished_at=t0 + timedelta(seconds=seconds),
                )
            )
    samples = scrape(client_for(sqlite_db))
    bucket = "baton_step_duration_seconds_bucket"
    assert value(samples, bucket, agent="echo", le="0.25") == 0
    assert value(samples, bucket, agent="echo", le="0.5") == 1
    assert value(samples, bucket, agent="echo", le="10.0") == 2
    assert value(samples, bucket, agent="echo", le="3600.0") == 2
    assert value(samples, bucket, agent="echo", le="+Inf") == 3
    assert value(samples, "baton_step_duration_seconds_sum", agent="echo") == pytest.approx(
        4007.3, abs=0.01
    )
    with session_scope(sqlite_db) as s:
        s.execute(update(OrchestrationStep).values(status="running", finished_at=None))
    samples = scrape(client_for(sqlite_db))
    assert ("baton_step_duration_seconds_count", frozenset({("agent", "echo")})) not in samples


def test_webhook_counters_of_this_process_are_exposed(sqlite_db: str) -> None:
    source = f"src-{uuid.uuid4().hex[:8]}"
    metrics.webhooks_received.labels(source=source).inc()
    metrics.webhooks_received.labels(source=source).inc()
    metrics.webhooks_refused.labels(source=source, reason="signature").inc()
    metrics.webhooks_duplicate.labels(source=source).inc()
    samples = scrape(client_for(sqlite_db))
    assert value(samples, "baton_webhooks_duplicate_total", source=source) == 1
    assert value(samples, "baton_webhooks_received_total", source=source) == 2
    assert value(samples, "baton_webhooks_refused_total", source=source, reason="signature") == 1


def test_each_app_has_its_own_registry(sqlite_db: str) -> None:
    first, second = client_for(sqlite_db).app, client_for(sqlite_db).app
    assert metrics.registry_for(first) is not metrics.registry_for(second)  # type: ignore[arg-type]
    assert metrics.registry_for(first) is metrics.registry_for(first)  # type: ignore[arg-type]


def test_an_unreachable_database_is_reported_not_a_500(tmp_path: Any) -> None:
    # A directory where the database file should be: SQLite cannot open it.
    folder = tmp_path / "not-a-db"
    folder.mkdir()
    samples = scrape(client_for(f"sqlite:///{folder}"))
    assert value(samples, "baton_metrics_database_up") == 0


def test_deliveries_by_status_and_a_missing_table_is_no_error(sqlite_db: str) -> None:
    now = datetime.now(UTC).isoformat(" ")
    sub = uuid.uuid4().hex
    with session_scope(sqlite_db) as s:
        s.execute(
            text(
                "INSERT INTO webhook_subscriptions (id, organization, url, secret_encrypted, "
                "event_types, last_sequence, created_at) VALUES (:id, 'global', "
                "'http://127.0.0.1:9/x', 'x', '[]', 0, :now)"
            ),
            {"id": sub, "now": now},
        )
        for seq, status in enumerate(("delivered", "delivered", "failed")):
            s.execute(
                text(
                    "INSERT INTO webhook_deliveries (subscription_id, event_sequence, event_type,"
                    " webhook_id, payload, status, attempts, next_attempt_at, created_at) VALUES"
                    " (:sub, :seq, 'run.completed', :wid, '{}', :status, 1, :now, :now)"
                ),
                {"sub": sub, "seq": seq, "wid": f"msg_{seq}", "status": status, "now": now},
            )
    samples = scrape(client_for(sqlite_db))
    assert value(samples, "baton_webhook_deliveries", status="delivered") == 2
    assert value(samples, "baton_webhook_deliveries", status="failed") == 1
    with session_scope(sqlite_db) as s:
        s.execute(text(f"DROP TABLE {metrics.DELIVERIES_TABLE}"))
    samples = scrape(client_for(sqlite_db))
    assert value(samples, "baton_metrics_database_up") == 1
    assert not any(name == "baton_webhook_deliveries" for name, _ in samples)
