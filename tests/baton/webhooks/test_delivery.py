"""Outbound webhooks against a real local HTTP server: signed so receivers can verify,
retried with backoff, recorded failed after the last attempt, and never in a run's way."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from dagster import DagsterInstance, build_sensor_context
from pydantic import SecretStr
from sqlalchemy import update

from baton.db.engine import session_scope
from baton.db.models import WebhookDelivery, utcnow
from baton.settings import Settings, WebhookSettings
from baton.store.events import EventsRepository
from baton.webhooks.delivery import Dispatcher, backoff, deliveries
from baton.webhooks.signing import verify
from baton.webhooks.subscriptions import SubscriptionError, Subscriptions
from orchestration_defs.compiler.resources import BatonStoreResource
from tests.fakes.http import FakeServer, Reply, Request
from tests.helpers import compile_text, execute

ONE_STEP = """
slug: notify-me
name: Notify me
version: 1
organization: acme
steps:
  - id: a
    agent: echo
    with: {x: 1}
"""


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(
        database_url=SecretStr(db_url),
        webhooks=WebhookSettings(
            delivery_backoff_seconds=0, delivery_max_attempts=3, delivery_timeout_seconds=1
        ),
    )


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as fake:
        yield fake


def event(url: str, type_: str, org: str = "acme", **payload: Any) -> None:
    with session_scope(url) as s:
        EventsRepository(s).append(organization=org, type=type_, run_id=None, payload=payload)


def subscribe(settings: Settings, target: str, events: list[str], org: str = "acme") -> Any:
    return Subscriptions(settings.db_url, settings).subscribe(
        organization=org, url=target, events=events
    )


def test_a_good_endpoint_gets_a_signature_it_can_verify(
    settings: Settings, server: FakeServer
) -> None:
    server.route("POST", "/hook", lambda _r: Reply(204, raw=b""))
    event(settings.db_url, "run.completed", note="before the subscription")
    sub_id, secret = subscribe(settings, f"{server.url}/hook", ["run.completed"])
    event(settings.db_url, "run.completed", outputs={"ok": True})
    event(settings.db_url, "step.started")  # not subscribed
    dispatcher = Dispatcher(settings.db_url, settings)
    assert dispatcher.enqueue() == 1
    assert dispatcher.enqueue() == 0  # the subscription's cursor moved on
    [attempt] = dispatcher.send_due()
    assert attempt.status == "delivered" and attempt.status_code == 204
    [request] = server.calls("POST", "/hook")
    webhook_id = verify([secret], request.headers, request.body)
    body = json.loads(request.body)
    assert body["type"] == "run.completed"
    assert body["data"]["outputs"] == {"ok": True} and body["data"]["organization"] == "acme"
    [row] = deliveries(settings.db_url, sub_id)
    assert (row.status, row.attempts, row.webhook_id) == ("delivered", 1, webhook_id)
    assert row.delivered_at is not None


def test_a_failing_endpoint_is_retried_then_recorded_failed(
    settings: Settings, server: FakeServer
) -> None:
    server.route("POST", "/down", lambda _r: Reply(503, {"error": "down"}))
    subscribe(settings, f"{server.url}/down", ["run.*"])
    event(settings.db_url, "run.failed", error="boom")
    dispatcher = Dispatcher(settings.db_url, settings)
    dispatcher.enqueue()
    statuses = [a.status for _ in range(5) for a in dispatcher.send_due()]
    assert statuses == ["pending", "pending", "failed"]  # max_attempts = 3, then nothing due
    [row] = deliveries(settings.db_url)
    assert (row.status, row.attempts, row.last_status_code) == ("failed", 3, 503)
    assert row.last_error is not None and "HTTP 503" in row.last_error
    calls = server.calls("POST", "/down")
    assert len(calls) == 3
    # The same webhook-id on every attempt (receivers deduplicate), a fresh signature each time.
    assert len({c.headers["webhook-id"] for c in calls}) == 1


def test_a_retry_waits_for_its_backoff(settings: Settings, server: FakeServer) -> None:
    server.script("POST", "/flaky", [Reply(500), Reply(200, {})])
    waiting = settings.model_copy(
        update={"webhooks": settings.webhooks.model_copy(update={"delivery_backoff_seconds": 60})}
    )
    subscribe(waiting, f"{server.url}/flaky", ["*"])
    event(settings.db_url, "checkpoint.requested")  # published as approval.requested
    dispatcher = Dispatcher(settings.db_url, waiting)
    dispatcher.enqueue()
    assert [a.status for a in dispatcher.send_due()] == ["pending"]
    assert dispatcher.send_due() == []  # not due for a minute
    [row] = deliveries(settings.db_url)
    assert row.event_type == "approval.requested"
    with session_scope(settings.db_url) as s:
        s.execute(update(WebhookDelivery).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    assert [a.status for a in dispatcher.send_due()] == ["delivered"]


def test_backoff_doubles() -> None:
    settings = Settings(webhooks=WebhookSettings(delivery_backoff_seconds=10))
    assert [backoff(settings, n).total_seconds() for n in (1, 2, 3, 4)] == [10, 20, 40, 80]


def test_a_slow_endpoint_times_out_and_is_recorded(settings: Settings, server: FakeServer) -> None:
    server.route("POST", "/slow", lambda _r: Reply(200, {}, delay=3))
    subscribe(settings, f"{server.url}/slow", ["run.completed"])
    event(settings.db_url, "run.completed")
    dispatcher = Dispatcher(settings.db_url, settings)
    dispatcher.enqueue()
    started = time.monotonic()
    [attempt] = dispatcher.send_due()
    assert time.monotonic() - started < 2.5  # the 1 s timeout, not the endpoint's 3 s
    assert attempt.status == "pending" and attempt.status_code is None
    assert attempt.error is not None and "Timeout" in attempt.error


def test_an_unreachable_endpoint_is_recorded(settings: Settings) -> None:
    subscribe(settings, "http://127.0.0.1:9/nothing-listens", ["run.completed"])
    event(settings.db_url, "run.completed")
    dispatcher = Dispatcher(settings.db_url, settings)
    dispatcher.enqueue()
    [attempt] = dispatcher.send_due()
    assert attempt.status == "pending" and attempt.error is not None


def test_events_of_other_organizations_are_not_delivered(
    settings: Settings, server: FakeServer
) -> None:
    server.route("POST", "/hook", lambda _r: Reply(200, {}))
    subscribe(settings, f"{server.url}/hook", ["*"])
    event(settings.db_url, "run.completed", org="elsewhere")
    dispatcher = Dispatcher(settings.db_url, settings)
    assert dispatcher.enqueue() == 0


def test_unsubscribe_stops_deliveries(settings: Settings, server: FakeServer) -> None:
    server.route("POST", "/hook", lambda _r: Reply(200, {}))
    sub_id, _ = subscribe(settings, f"{server.url}/hook", ["run.completed"])
    event(settings.db_url, "run.completed")
    dispatcher = Dispatcher(settings.db_url, settings)
    dispatcher.enqueue()
    subs = Subscriptions(settings.db_url, settings)
    assert subs.unsubscribe(sub_id) == 1
    assert dispatcher.send_due() == []
    event(settings.db_url, "run.completed")
    assert dispatcher.enqueue() == 0
    [row] = deliveries(settings.db_url)
    assert (row.status, row.last_error) == ("failed", "unsubscribed")
    with pytest.raises(SubscriptionError, match="no active subscription"):
        subs.unsubscribe(sub_id)
    assert subs.list() == [] and len(subs.list(include_disabled=True)) == 1


@pytest.mark.parametrize(
    ("url", "events", "message"),
    [
        ("ftp://example.com/x", ["run.completed"], "url: expected an http"),
        ("http:///no-host", ["run.completed"], "url: expected an http"),
        ("http://example.com", ["run.finished"], "unknown event type 'run.finished'"),
        ("http://example.com", ["nope.*"], "unknown event type 'nope.*'"),
        ("http://example.com", [], "at least one event type"),
    ],
)
def test_bad_subscriptions_name_the_field(
    settings: Settings, url: str, events: list[str], message: str
) -> None:
    with pytest.raises(SubscriptionError, match=message):
        subscribe(settings, url, events)


def test_the_subscription_secret_is_not_stored_in_clear(settings: Settings) -> None:
    from sqlalchemy import text

    _, secret = subscribe(settings, "http://example.com/hook", ["run.completed"])
    with session_scope(settings.db_url) as s:
        row = " ".join(str(v) for v in s.execute(text("SELECT * FROM webhook_subscriptions")).one())
    assert secret.removeprefix("whsec_") not in row


def test_a_run_is_not_slowed_by_a_hanging_subscriber(
    dagster_instance: DagsterInstance, server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    monkeypatch.setenv("BATON_DATABASE_URL", url)
    monkeypatch.setenv("BATON_WEBHOOKS__DELIVERY_TIMEOUT_SECONDS", "2")
    from baton.settings import get_settings

    get_settings.cache_clear()
    settings = get_settings()
    hits: list[Request] = []

    def hang(request: Request) -> Reply:
        hits.append(request)
        return Reply(200, {}, delay=5)

    server.route("POST", "/hang", hang)
    subscribe(settings, f"{server.url}/hang", ["run.created", "run.completed"])
    _, job = compile_text(ONE_STEP, url)
    result = execute(job, dagster_instance, url)
    assert result.success
    # The endpoint hangs for 5 s per request; the run never waited on it because it never
    # called it: runs only append events.
    assert hits == [], "a run never calls a subscriber itself"
    # Every event of the run is queued for the delivery sensor, which sends it on its own.
    from sensors.webhook_delivery import webhook_delivery_sensor

    context = build_sensor_context(
        instance=dagster_instance, resources={"baton_store": BatonStoreResource(database_url=url)}
    )
    sensor_started = time.monotonic()
    skip = webhook_delivery_sensor(context)
    assert "queued" in str(skip.skip_message)  # type: ignore[union-attr]
    rows = deliveries(url)
    types = [r.event_type for r in rows]
    assert sorted(types) == ["run.completed", "run.created"]
    assert time.monotonic() - sensor_started >= 2  # the sensor waited on the endpoint, not the run
    assert all(r.last_error and "Timeout" in r.last_error for r in rows if r.attempts)


def test_delivery_ids_are_unique_per_subscription_and_event(settings: Settings) -> None:
    first, _ = subscribe(settings, "http://example.com/a", ["run.completed"])
    second, _ = subscribe(settings, "http://example.com/b", ["run.completed"])
    event(settings.db_url, "run.completed")
    dispatcher = Dispatcher(settings.db_url, settings)
    assert dispatcher.enqueue() == 2
    assert {r.subscription_id for r in deliveries(settings.db_url)} == {first, second}
    assert isinstance(first, uuid.UUID)
