"""Runs through the API: launching (inputs checked, Dagster asked), listing with filters and
cursors, detail, abort, and retry/skip of a failed step."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from baton.segments import RUN_TAG, SEGMENT_TAG
from baton.store.approvals import ApprovalsRepository
from baton.store.steps import StepsRepository
from tests.baton.api.world import World


def test_launch_records_the_run_and_asks_dagster_for_the_job(world: World) -> None:
    response = world.client.post(
        "/api/v1/runs",
        json={"orchestration": "acme-greet", "inputs": {"name": "Ada"}},
        headers=world.headers("acme", "operator"),
    )
    assert response.status_code == 202, response.text
    run_id = response.json()["run_id"]
    (launch,) = world.gateway.launches
    assert launch["job_name"] == "acme_greet"
    assert launch["run_config"] == {"inputs": {"name": "Ada"}}  # the run id is in the tags
    assert launch["tags"][RUN_TAG] == run_id
    # The launched segment is the run's active one: its steps may run.
    assert world.store.get_run(uuid.UUID(run_id)).segment_id == launch["tags"][SEGMENT_TAG]
    run = world.store.get_run(uuid.UUID(run_id))
    assert (run.status, run.created_by, run.organization) == ("pending", "acme-operator", "acme")


def test_launch_takes_the_job_name_and_suggests_the_slug(world: World) -> None:
    headers = world.headers("acme", "operator")
    ok = world.client.post(
        "/api/v1/runs",
        json={"orchestration": "acme_greet", "inputs": {"name": "A"}},
        headers=headers,
    )
    assert ok.status_code == 202 and ok.json()["orchestration"] == "acme-greet", ok.text
    typo = world.client.post(
        "/api/v1/runs", json={"orchestration": "acme-gret", "inputs": {}}, headers=headers
    )
    assert typo.status_code == 422
    assert "did you mean 'acme-greet'?" in typo.json()["error"]["message"]


def test_launch_refuses_bad_inputs_naming_the_field(world: World) -> None:
    headers = world.headers("acme", "operator")
    cases = [
        ({"orchestration": "acme-greet", "inputs": {}}, "inputs.name"),
        ({"orchestration": "acme-greet", "inputs": {"name": 3}}, "inputs.name"),
        ({"orchestration": "acme-greet", "inputs": {"name": "a", "x": 1}}, "inputs.x"),
        ({"orchestration": "nope", "inputs": {}}, "orchestration"),
        ({"inputs": {}}, "orchestration"),
        ({"orchestration": "acme-greet", "inputs": []}, "inputs"),
    ]
    for body, field in cases:
        response = world.client.post("/api/v1/runs", json=body, headers=headers)
        assert response.status_code == 422, body
        assert response.json()["error"]["field"] == field, response.json()
    assert world.gateway.launches == []


def test_a_launch_that_cannot_start_fails_the_run(world: World) -> None:
    def broken(_segment: object) -> str:
        raise RuntimeError("code location failed to load")

    world.gateway.launch = broken  # type: ignore[method-assign]
    response = world.client.post(
        "/api/v1/runs",
        json={"orchestration": "acme-greet", "inputs": {"name": "Ada"}},
        headers=world.headers("acme", "admin"),
    )
    assert response.status_code == 202
    run = world.store.get_run(uuid.UUID(response.json()["run_id"]))
    assert run.status == "failed"
    assert run.error == {"message": "code location failed to load", "type": "RuntimeError"}


def test_list_filters_and_cursor_pagination(world: World) -> None:
    waiting = [world.waiting_run()[0] for _ in range(3)]
    failed = world.failed_run()
    world.waiting_run("other")
    headers = world.headers("acme", "viewer")

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = world.client.get("/api/v1/runs", params=params, headers=headers).json()
        seen += [r["run_id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [failed, *reversed(waiting)]  # newest first, each once

    def ids(**params: object) -> list[str]:
        response = world.client.get("/api/v1/runs", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return [r["run_id"] for r in response.json()["items"]]

    assert ids(status="failed") == [failed]
    assert set(ids(status="awaiting_approval")) == set(waiting)
    assert len(ids(orchestration="acme-greet")) == 4
    assert ids(orchestration="other-greet") == []
    future = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    assert ids(since=future) == []
    assert len(ids(until=future)) == 4
    assert ids(parent=str(uuid.uuid4())) == []


def test_detail_has_steps_approvals_and_dagster_runs(world: World) -> None:
    run_id, approval_id = world.waiting_run()
    body = world.client.get(
        f"/api/v1/runs/{run_id}", headers=world.headers("acme", "viewer")
    ).json()
    assert body["status"] == "awaiting_approval"
    assert [(s["step_id"], s["status"]) for s in body["steps"]] == [
        ("greet", "completed"),
        ("review", "waiting"),
    ]
    assert [a["approval_id"] for a in body["approvals"]] == [approval_id]
    assert body["deliverables"] == [] and body["children"] == []
    assert body["last_dagster_run_id"] == "segment-1"
    assert body["segments"] == []  # no such run in this Dagster instance
    assert body["created_at"].endswith("+00:00")  # one format: docs/api.md


def test_abort_cancels_pending_approvals_and_is_refused_twice(world: World) -> None:
    run_id, approval_id = world.waiting_run()
    headers = world.headers("acme", "operator")
    response = world.client.post(f"/api/v1/runs/{run_id}/abort", headers=headers)
    assert response.status_code == 200
    assert response.json()["status"] == "aborted"
    with world.store.session() as s:
        assert ApprovalsRepository(s).get(uuid.UUID(approval_id)).status == "cancelled"  # type: ignore[union-attr]
    again = world.client.post(f"/api/v1/runs/{run_id}/abort", headers=headers)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"


def test_retry_resets_the_failed_step_and_launches_a_new_segment(world: World) -> None:
    run_id = world.failed_run()
    response = world.client.post(
        f"/api/v1/runs/{run_id}/steps/greet/retry", headers=world.headers("acme", "operator")
    )
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "running"
    with world.store.session() as s:
        assert StepsRepository(s).get(uuid.UUID(run_id), "greet").status == "pending"  # type: ignore[union-attr]
    (launch,) = world.gateway.launches
    assert launch["tags"][RUN_TAG] == run_id


@pytest.mark.parametrize("action", ["retry", "skip"])
def test_a_retry_or_skip_that_cannot_launch_can_be_tried_again(world: World, action: str) -> None:
    run_id = world.failed_run()
    headers = world.headers("acme", "operator")

    def refuse(_segment: object) -> str:
        raise RuntimeError("no job 'acme_greet' in code location 'baton'")

    world.gateway.launch = refuse  # type: ignore[method-assign]
    path = f"/api/v1/runs/{run_id}/steps/greet/{action}"
    assert world.client.post(path, headers=headers).status_code == 202
    run = world.store.get_run(uuid.UUID(run_id))
    assert run.status == "failed" and "no job 'acme_greet'" in run.error["message"]
    with world.store.session() as s:
        assert StepsRepository(s).get(uuid.UUID(run_id), "greet").status == "failed"  # type: ignore[union-attr]
    del world.gateway.launch  # the job is back: the same action works now
    assert world.client.post(path, headers=headers).status_code == 202
    assert len(world.gateway.launches) == 1


def test_skip_marks_the_step_skipped_and_continues(world: World) -> None:
    run_id = world.failed_run()
    response = world.client.post(
        f"/api/v1/runs/{run_id}/steps/greet/skip", headers=world.headers("acme", "admin")
    )
    assert response.status_code == 202, response.text
    with world.store.session() as s:
        step = StepsRepository(s).get(uuid.UUID(run_id), "greet")
        assert step is not None and step.status == "skipped"
    assert len(world.gateway.launches) == 1


def test_retry_and_skip_are_conflicts_unless_the_run_and_step_failed(world: World) -> None:
    run_id, _ = world.waiting_run()
    headers = world.headers("acme", "operator")
    for action in ("retry", "skip"):
        response = world.client.post(f"/api/v1/runs/{run_id}/steps/greet/{action}", headers=headers)
        assert response.status_code == 409
        assert "awaiting_approval" in response.json()["error"]["message"]
    missing = world.client.post(f"/api/v1/runs/{run_id}/steps/nope/retry", headers=headers)
    assert missing.status_code == 404
    assert world.gateway.launches == []


def test_retry_with_a_new_input_and_reason_is_audited(world: World) -> None:
    run_id = world.failed_run()
    headers = world.headers("acme", "operator")
    response = world.client.post(
        f"/api/v1/runs/{run_id}/steps/greet/retry",
        json={"reason": "agent fixed", "input": {"name": "Bea"}},
        headers=headers,
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["status"], body["launched"]) == ("running", True) and body["audit_id"]
    with world.store.session() as s:
        step = StepsRepository(s).get(uuid.UUID(run_id), "greet")
        assert step is not None and step.input_replacement == {"name": "Bea"}
    audit = world.client.get(f"/api/v1/runs/{run_id}/audit", headers=headers)
    assert audit.status_code == 200, audit.text
    (entry,) = audit.json()["items"]
    assert entry["id"] == body["audit_id"]
    assert (entry["action"], entry["step_id"], entry["by"], entry["via"]) == (
        "retry",
        "greet",
        "acme-operator",
        "api",
    )
    assert (entry["reason"], entry["details"]) == ("agent fixed", {"input": {"name": "Bea"}})
    assert (entry["run_status"], entry["step_status"], entry["outcome"]) == (
        "failed",
        "failed",
        "accepted",
    )
    assert datetime.fromisoformat(entry["at"]).utcoffset() == timedelta(0)


def test_skip_with_an_output_and_a_refused_abort_are_audited(world: World) -> None:
    run_id = world.failed_run()
    headers = world.headers("acme", "operator")
    skip = world.client.post(
        f"/api/v1/runs/{run_id}/steps/greet/skip",
        json={"output": {"greeting": "hi"}, "reason": "done by hand"},
        headers=headers,
    )
    assert skip.status_code == 202, skip.text
    with world.store.session() as s:
        step = StepsRepository(s).get(uuid.UUID(run_id), "greet")
        assert step is not None and (step.status, step.output) == ("skipped", {"greeting": "hi"})
    world.store.fail_run(uuid.UUID(run_id), {"message": "later"})  # not abortable now
    abort = world.client.post(
        f"/api/v1/runs/{run_id}/abort", json={"reason": "stop"}, headers=headers
    )
    assert abort.status_code == 409 and "is failed" in abort.json()["error"]["message"]
    items = world.client.get(f"/api/v1/runs/{run_id}/audit", headers=headers).json()["items"]
    assert [(i["action"], i["outcome"], i["reason"]) for i in items] == [
        ("skip", "accepted", "done by hand"),
        ("abort", "refused", "stop"),
    ]
    assert items[0]["details"] == {"output": {"greeting": "hi"}}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"input": [1, 2]}, "input"),
        ({"input": {"a": 1}, "extra": True}, None),
        ({"reason": "x" * 5001}, None),
    ],
)
def test_action_bodies_are_checked_at_the_edge(
    world: World, body: dict[str, object], field: str | None
) -> None:
    run_id = world.failed_run()
    headers = world.headers("acme", "operator")
    response = world.client.post(
        f"/api/v1/runs/{run_id}/steps/greet/retry", json=body, headers=headers
    )
    assert response.status_code == 422, response.text
    if field:
        assert response.json()["error"]["field"] == field
    assert world.gateway.launches == []
    assert world.store.get_run(uuid.UUID(run_id)).status == "failed"


def test_the_audit_is_read_within_the_organization(world: World) -> None:
    run_id = world.failed_run()
    other = world.client.get(
        f"/api/v1/runs/{run_id}/audit", headers=world.headers("other", "viewer")
    )
    assert other.status_code == 404
    viewer = world.client.get(
        f"/api/v1/runs/{run_id}/audit", headers=world.headers("acme", "viewer")
    )
    assert viewer.status_code == 200 and viewer.json() == {"items": []}
    refused = world.client.post(
        f"/api/v1/runs/{run_id}/steps/greet/retry", headers=world.headers("acme", "viewer")
    )
    assert refused.status_code == 403
