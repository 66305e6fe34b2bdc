"""Values stored before the edge refused them (old rows) never break a read: lists, the run,
its events, approvals and the approvals page answer, with U+FFFD and null in their place.

SQLite only: its JSON columns hold escaped text, so a lone surrogate or an infinity could be
stored; Postgres' JSONB never accepted either (the insert failed), so it holds none.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from baton.approvals import Approvals
from baton.store.service import StepPlan
from tests.baton.api.edge_world import edge_world
from tests.baton.api.world import POLICY, World

BAD = {"name": "Ada \ud800", "\udc00key": [float("inf"), float("nan"), "x\udfff"]}
CLEAN = {"name": "Ada \ufffd", "\ufffdkey": [None, None, "x\ufffd"]}


@pytest.fixture
def w(tmp_path: Path, sqlite_db: str) -> Iterator[World]:
    yield from edge_world(tmp_path, sqlite_db)


def _old_run(w: World) -> tuple[str, str]:
    store = w.store
    run_id = store.create_run(
        organization="acme", slug="acme-greet", version=1, inputs=BAD, created_by="launcher"
    )
    store.begin_segment(
        run_id=run_id,
        dagster_run_id="segment-1",
        steps=[StepPlan("greet", "agent", "echo"), StepPlan("review", "checkpoint", None)],
    )
    store.start_step(run_id, "greet", input=BAD, dagster_run_id="segment-1")
    store.complete_step(run_id, "greet", output=BAD)
    approval = Approvals(store).request(
        run_id=run_id,
        step_id="review",
        prompt="Send it?",
        show={"greeting": "Hello \ud800"},
        policy=POLICY,
        timeout=timedelta(hours=1),
        dagster_run_id="segment-1",
    )
    return str(run_id), str(approval.id)


def test_old_bad_values_are_read_back_safely_everywhere(w: World) -> None:
    run_id, approval_id = _old_run(w)
    viewer = w.headers("acme", "viewer")
    runs = w.client.get("/api/v1/runs", headers=viewer)
    assert runs.status_code == 200, runs.text
    assert runs.json()["items"][0]["inputs"] == CLEAN
    run = w.client.get(f"/api/v1/runs/{run_id}", headers=viewer)
    assert run.status_code == 200, run.text
    greet = next(s for s in run.json()["steps"] if s["step_id"] == "greet")
    assert greet["input"] == CLEAN and greet["output"] == CLEAN
    assert run.json()["approvals"][0]["show"] == {"greeting": "Hello \ufffd"}
    for url in (f"/api/v1/runs/{run_id}/events", "/api/v1/events", "/api/v1/approvals"):
        response = w.client.get(url, headers=viewer)
        assert response.status_code == 200, (url, response.text)
    approval = w.client.get(f"/api/v1/approvals/{approval_id}", headers=viewer)
    assert approval.status_code == 200 and approval.json()["show"]["greeting"] == "Hello \ufffd"


def test_the_approvals_page_shows_an_old_bad_value(w: World) -> None:
    _, approval_id = _old_run(w)
    page = w.client.get("/ui/login")
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    w.client.post(
        "/ui/login",
        data={"token": w.tokens[("acme", "approver")], "csrf": csrf, "next": ""},
    )
    for url in ("/ui/approvals", f"/ui/approvals/{approval_id}"):
        response = w.client.get(url)
        assert response.status_code == 200, response.text
        assert "Hello \ufffd" in response.text
