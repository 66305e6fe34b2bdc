"""Every timestamp the API returns (and every delivery it posts) carries its UTC offset, on
SQLite (which keeps no offset) as on Postgres."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from baton.db.engine import session_scope
from baton.db.models import OrchestrationEvent
from baton.webhooks.delivery import envelope
from tests.baton.api.world import World, build_world

# The start of an ISO 8601 date-time, and the offset (or Z) it must end with.
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
OFFSET = re.compile(r"(Z|[+-]\d{2}:\d{2})$")


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
    bad, seen = _without_offset(bodies)
    assert seen > 40, bodies
    assert not bad, "timestamps without their UTC offset:\n" + "\n".join(bad)
    approval = bodies[f"/api/v1/approvals/{approval_id}"]
    for field in ("requested_at", "expires_at", "decided_at", "claimed_at"):
        assert approval[field].endswith("Z"), (field, approval[field])  # pydantic's UTC


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
