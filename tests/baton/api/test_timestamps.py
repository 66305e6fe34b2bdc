"""Every timestamp the API returns (JSON, SSE, every delivery it posts; and the CLI's JSON of the
inbox and deliveries) carries its UTC offset in one format, ``+00:00`` (docs/api.md), on SQLite
(which keeps no offset) as on Postgres."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from baton.api.schemas import Event
from baton.api.sse import format_event
from baton.cli.main import main
from baton.db.engine import session_scope
from baton.db.models import OrchestrationEvent
from baton.settings import get_settings
from baton.webhooks.delivery import Dispatcher, envelope
from baton.webhooks.signing import headers
from baton.webhooks.sources import Sources
from baton.webhooks.subscriptions import Subscriptions
from tests.baton.api.world import World, build_world

# The start of an ISO 8601 date-time, and the one offset it must end with: +00:00 everywhere
# (docs/api.md), never Z in some places and +00:00 in others.
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
OFFSET = re.compile(r"\+00:00$")


@pytest.fixture
def any_world(tmp_path: Path, db_url: str) -> Iterator[World]:
    w = build_world(tmp_path, db_url)
    yield w
    w.client.__exit__(None, None, None)


def _timestamps(value: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    """(path, value) of every ISO date-time string, and of every non-null ``*_at`` field."""
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{where}.{key}"
            stamp = key.endswith("_at") and not isinstance(item, dict | list)
            named = key in ("at", "timestamp", "since", "until") and isinstance(item, str)
            if (stamp and item is not None) or named:
                yield path, item
            else:
                yield from _timestamps(item, path)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _timestamps(item, f"{where}[{index}]")
    elif isinstance(value, str) and ISO.match(value):
        yield where, value


def _without_offset(bodies: dict[str, Any]) -> tuple[list[str], int]:
    bad, seen = [], 0
    for route, body in bodies.items():
        for path, value in _timestamps(body):
            seen += 1
            if not (isinstance(value, str) and ISO.match(value) and OFFSET.search(value)):
                bad.append(f"{route} {path} = {value!r}")
    return bad, seen


def test_every_timestamp_the_api_returns_has_an_offset(any_world: World) -> None:
    w = any_world
    viewer, operator = w.headers("acme", "viewer"), w.headers("acme", "operator")
    run_id, approval_id = w.waiting_run()
    decided = w.client.post(
        f"/api/v1/approvals/{approval_id}/decision",
        json={"decision": "continue", "comment": "ok"},
        headers=w.headers("acme", "approver"),
    )
    assert decided.status_code == 200, decided.text
    _, pending = w.waiting_run()
    failed = w.failed_run()
    retried = w.client.post(f"/api/v1/runs/{failed}/steps/greet/retry", headers=operator)
    assert retried.status_code == 202, retried.text
    routes = [
        "/api/v1/runs",
        f"/api/v1/runs/{run_id}",
        f"/api/v1/runs/{failed}",
        f"/api/v1/runs/{failed}/audit",
        f"/api/v1/runs/{run_id}/tree",
        f"/api/v1/runs/{run_id}/events",
        f"/api/v1/runs/{run_id}/tree/events",
        "/api/v1/events",
        "/api/v1/approvals",
        f"/api/v1/approvals/{approval_id}",
        f"/api/v1/approvals/{pending}",
        "/api/v1/orchestrations",
        "/api/v1/orchestrations/acme-greet",
        "/api/v1/library/problems",
    ]
    bodies: dict[str, Any] = {"POST decision": decided.json(), "POST retry": retried.json()}
    for route in routes:
        response = w.client.get(route, headers=viewer)
        assert response.status_code == 200, f"{route}: {response.text}"
        bodies[route] = response.json()
    # The live stream writes the same events through its own path (sse.format_event).
    for item in bodies["/api/v1/events"]["items"]:
        frame = format_event(Event.model_validate(item))
        bodies[f"SSE event {item['id']}"] = json.loads(frame.split("data: ", 1)[1])
    bad, seen = _without_offset(bodies)
    assert seen > 40, bodies
    assert not bad, "timestamps without their UTC offset:\n" + "\n".join(bad)
    approval = bodies[f"/api/v1/approvals/{approval_id}"]
    for field in ("requested_at", "expires_at", "decided_at", "claimed_at"):
        assert approval[field].endswith("+00:00"), (field, approval[field])  # not pydantic's Z


def test_outbound_deliveries_carry_the_offset(any_world: World) -> None:
    w = any_world
    w.waiting_run()
    with session_scope(w.settings.db_url) as s:
        events = list(s.scalars(select(OrchestrationEvent)))
        bodies = {f"event {e.sequence}": envelope(e) for e in events}
    assert bodies
    bad, seen = _without_offset(bodies)
    assert seen >= len(bodies)
    assert not bad, "delivery timestamps without their UTC offset:\n" + "\n".join(bad)
    assert all(b["timestamp"].endswith("+00:00") for b in bodies.values())


def test_the_cli_json_of_inbox_and_deliveries_carries_the_same_offset(
    any_world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    w = any_world
    secret = Sources(w.settings.db_url, w.settings).add("github", "acme")
    body = json.dumps({"action": "opened"}).encode()
    signed = {"content-type": "application/json", **headers(secret, "msg_1", body)}
    received = w.client.post("/webhooks/github", content=body, headers=signed)
    assert received.status_code == 202, received.text
    Subscriptions(w.settings.db_url, w.settings).subscribe(
        organization="acme", url="http://127.0.0.1:9/hook", events=["run.*"]
    )
    w.waiting_run()
    assert Dispatcher(w.settings.db_url, w.settings).enqueue() >= 1
    monkeypatch.setenv("BATON_DATABASE_URL", w.settings.db_url)
    get_settings.cache_clear()
    bodies: dict[str, Any] = {}
    for command in (["webhooks", "inbox"], ["webhooks", "deliveries"]):
        assert main(command) == 0
        bodies[" ".join(command)] = json.loads(capsys.readouterr().out)
    assert bodies["webhooks inbox"] and bodies["webhooks deliveries"], bodies
    bad, seen = _without_offset(bodies)
    assert seen >= 2 and not bad, bad
