"""Deciding through the API: the approvals service's rules, mapped to HTTP statuses."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.baton.api.world import World


def _decide(world: World, approval_id: str, who: str, **body: object) -> tuple[int, dict]:
    response = world.client.post(
        f"/api/v1/approvals/{approval_id}/decision",
        json={"decision": "continue", **body},
        headers={"Authorization": f"Bearer {who}"},
    )
    return response.status_code, response.json()


def test_a_decision_with_a_modification_is_recorded_with_its_diff(world: World) -> None:
    run_id, approval_id = world.waiting_run()
    status, body = _decide(
        world,
        approval_id,
        world.tokens[("acme", "approver")],
        modifications={"greeting": "Hi, Ada"},
        comment="friendlier",
    )
    assert status == 200, body
    assert body["status"] == "decided"
    assert body["decided_by"] == "acme-approver"
    assert body["diff"] == {"greeting": {"from": "Hello, Ada!", "to": "Hi, Ada"}}
    assert [v["user"] for v in body["votes"]] == ["acme-approver"]
    events = world.client.get(
        f"/api/v1/runs/{run_id}/events", headers=world.headers("acme", "viewer")
    ).json()["items"]
    types = [e["type"] for e in events]
    assert types[-2:] == ["checkpoint.decided", "segment.launched"]
    # The fast path: this process claimed the decision and launched the next segment itself.
    (launch,) = world.gateway.launches
    assert launch["tags"]["baton/approval_id"] == approval_id
    assert launch["tags"]["baton/launched_by"] == "api"
    approval = world.client.get(
        f"/api/v1/approvals/{approval_id}", headers=world.headers("acme", "viewer")
    ).json()
    assert approval["status"] == "resuming" and approval["claimed_by"] == "api"
    assert approval["launch_error"] is None


def test_a_decision_whose_segment_cannot_start_says_why_and_is_left_to_the_sensor(
    world: World,
) -> None:
    _, approval_id = world.waiting_run()

    def refuse(segment: object) -> str:
        raise RuntimeError("no job 'acme_greet' in code location 'baton'")

    world.gateway.launch = refuse  # type: ignore[method-assign]
    status, body = _decide(world, approval_id, world.tokens[("acme", "approver")])
    assert status == 200, body
    approval = world.client.get(
        f"/api/v1/approvals/{approval_id}", headers=world.headers("acme", "viewer")
    ).json()
    assert approval["status"] == "resuming"
    assert "no job 'acme_greet'" in approval["launch_error"]
    assert approval["claimed_at"] is None  # handed back: the sensor takes it at its next tick


def test_the_service_rules_map_to_statuses(world: World) -> None:
    _, approval_id = world.waiting_run()
    outsider = world.add_user("acme", "outsider", "approver", ["sales"])
    status, body = _decide(world, approval_id, outsider)
    assert status == 403 and "approvers" in body["error"]["message"]

    _, own = world.waiting_run(created_by="acme-approver")
    status, body = _decide(world, own, world.tokens[("acme", "approver")])
    assert status == 403 and "launched this run" in body["error"]["message"]

    status, body = _decide(
        world, approval_id, world.tokens[("acme", "approver")], modifications={"title": "x"}
    )
    assert status == 422 and body["error"]["field"] == "modifications.title"

    status, body = _decide(
        world, approval_id, world.tokens[("acme", "approver")], modifications={"greeting": 1}
    )
    assert status == 422 and body["error"]["field"] == "modifications.greeting"

    status, body = _decide(world, approval_id, world.tokens[("acme", "approver")], decision="x")
    assert status == 422 and body["error"]["field"] == "decision"

    assert _decide(world, approval_id, world.tokens[("acme", "approver")])[0] == 200
    status, body = _decide(world, approval_id, world.tokens[("acme", "admin")])
    assert status == 409 and body["error"]["code"] == "conflict"


def test_list_filters_by_status_and_pages(world: World) -> None:
    approvals = [world.waiting_run()[1] for _ in range(3)]
    _decide(world, approvals[0], world.tokens[("acme", "approver")])
    headers = world.headers("acme", "viewer")
    pending = world.client.get(
        "/api/v1/approvals", params={"status": "pending"}, headers=headers
    ).json()
    assert [a["approval_id"] for a in pending["items"]] == approvals[1:]
    first = world.client.get("/api/v1/approvals", params={"limit": 2}, headers=headers).json()
    rest = world.client.get(
        "/api/v1/approvals", params={"limit": 2, "cursor": first["next_cursor"]}, headers=headers
    ).json()
    seen = [a["approval_id"] for a in first["items"] + rest["items"]]
    assert seen == approvals and rest["next_cursor"] is None
    bad = world.client.get("/api/v1/approvals", params={"status": "nope"}, headers=headers)
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "status"


def test_twenty_racing_http_decisions_have_one_winner_and_a_409(world: World) -> None:
    """Two approvers post at the same moment: one decision counts, the other is a conflict
    (before: the loser got HTTP 500 in 10 of 10 races); one segment is launched per approval."""
    first = world.tokens[("acme", "approver")]
    second = world.add_user("acme", "acme-approver-2", "approver", ["editors"])
    for _ in range(20):
        _, approval_id = world.waiting_run()
        barrier = threading.Barrier(2)

        def post(token: str, approval: str = approval_id, gate: Any = barrier) -> int:
            gate.wait()
            return _decide(world, approval, token)[0]

        with ThreadPoolExecutor(2) as pool:
            statuses = sorted(pool.map(post, [first, second]))
        assert statuses == [200, 409], statuses
        launched = [
            launch
            for launch in world.gateway.launches
            if launch["tags"]["baton/approval_id"] == approval_id
        ]
        assert len(launched) == 1
