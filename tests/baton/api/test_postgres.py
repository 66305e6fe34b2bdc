"""The API on Postgres: the same routes over Baton's tables in Postgres."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.baton.api.world import World, build_world

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_world(tmp_path: Path, pg_db: str) -> Iterator[World]:
    w = build_world(tmp_path, pg_db)
    yield w
    w.client.__exit__(None, None, None)


def test_routes_on_postgres(pg_world: World) -> None:
    w = pg_world
    viewer, operator = w.headers("acme", "viewer"), w.headers("acme", "operator")
    launched = w.client.post(
        "/api/v1/runs",
        json={"orchestration": "acme-greet", "inputs": {"name": "Ada"}},
        headers=operator,
    )
    assert launched.status_code == 202, launched.text
    run_id, approval_id = w.waiting_run()
    failed = w.failed_run()
    w.waiting_run("other")

    pages = []
    cursor = None
    while True:
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = w.client.get("/api/v1/runs", params=params, headers=viewer).json()
        pages += [r["run_id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [failed, run_id, launched.json()["run_id"]]

    decided = w.client.post(
        f"/api/v1/approvals/{approval_id}/decision",
        json={"decision": "continue", "modifications": {"greeting": "Hi"}},
        headers=w.headers("acme", "approver"),
    )
    assert decided.status_code == 200 and decided.json()["status"] == "decided"
    events = w.client.get(f"/api/v1/runs/{run_id}/events", headers=viewer).json()["items"]
    assert [e["type"] for e in events][-2:] == ["checkpoint.decided", "segment.launched"]
    assert (
        w.client.get(f"/api/v1/runs/{run_id}", headers=w.headers("other", "admin")).status_code
        == 404
    )
    retried = w.client.post(f"/api/v1/runs/{failed}/steps/greet/retry", headers=operator)
    assert retried.status_code == 202
    assert w.client.get("/readyz").status_code == 200
