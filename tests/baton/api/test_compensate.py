"""``POST /api/v1/runs/{id}/compensate``: an operator's compensation of a failed run."""

from __future__ import annotations

import uuid

from baton.segments import COMPENSATION_TAG, RUN_TAG
from tests.baton.api.world import World
from tests.baton.test_compensation import undoable_run


def test_an_operator_compensates_a_failed_run_and_a_second_request_is_refused(
    world: World,
) -> None:
    url = world.settings.db_url
    # compensate_on leaves failures out: nothing runs until an operator asks.
    run_id = undoable_run(url, "organization: acme\ncompensate_on: [aborted]", organization="acme")
    world.store.fail_run(run_id, {"message": "d failed"})
    assert world.store.get_run(run_id).compensation is None
    headers = world.headers("acme", "operator")
    response = world.client.post(f"/api/v1/runs/{run_id}/compensate", headers=headers)
    assert response.status_code == 202, response.text
    assert response.json()["steps"] == ["b", "a", "c"]
    (launch,) = world.gateway.launches
    assert launch["job_name"] == "undoable__compensate"
    assert (launch["tags"][RUN_TAG], launch["tags"][COMPENSATION_TAG]) == (str(run_id), "true")
    run = world.store.get_run(run_id)
    assert (run.compensation, run.compensation_claimed_by) == ("pending", "api")
    again = world.client.post(f"/api/v1/runs/{run_id}/compensate", headers=headers)
    assert again.status_code == 409
    assert "its compensation is pending already" in again.json()["error"]["message"]


def test_compensate_is_refused_with_the_state_named_and_needs_an_operator(world: World) -> None:
    run_id, _ = world.waiting_run()
    operator = world.headers("acme", "operator")
    refused = world.client.post(f"/api/v1/runs/{run_id}/compensate", headers=operator)
    assert refused.status_code == 409
    assert "is awaiting_approval" in refused.json()["error"]["message"]
    viewer = world.headers("acme", "viewer")
    assert world.client.post(f"/api/v1/runs/{run_id}/compensate", headers=viewer).status_code == 403
    missing = world.client.post(f"/api/v1/runs/{uuid.uuid4()}/compensate", headers=operator)
    assert missing.status_code == 404
    failed = world.failed_run()  # its steps have no compensate:
    nothing = world.client.post(f"/api/v1/runs/{failed}/compensate", headers=operator)
    assert nothing.status_code == 409
    assert "no completed step with a 'compensate:'" in nothing.json()["error"]["message"]


def test_the_run_detail_and_the_audit_show_the_compensation(world: World) -> None:
    url = world.settings.db_url
    run_id = undoable_run(url, "organization: acme\ncompensate_on: [aborted]", organization="acme")
    world.store.fail_run(run_id, {"message": "d failed"})
    headers = world.headers("acme", "operator")
    before = world.client.get(f"/api/v1/runs/{run_id}", headers=headers).json()
    assert before["compensation"] is None
    body = {"reason": "the launch was called off"}
    posted = world.client.post(f"/api/v1/runs/{run_id}/compensate", headers=headers, json=body)
    assert posted.status_code == 202, posted.text
    detail = world.client.get(f"/api/v1/runs/{run_id}", headers=headers).json()
    assert detail["compensation"]["status"] == "pending"
    steps = detail["compensation"]["steps"]
    assert [(s["step_id"], s["position"], s["status"]) for s in steps] == [
        ("b", 1, "pending"),
        ("a", 2, "pending"),
        ("c", 3, "pending"),
    ]
    audit = world.client.get(f"/api/v1/runs/{run_id}/audit", headers=headers).json()["items"]
    assert [(a["action"], a["outcome"], a["reason"]) for a in audit] == [
        ("compensate", "accepted", "the launch was called off")
    ]
    refused = world.client.post(
        f"/api/v1/runs/{run_id}/compensate", headers=headers, json={"reasons": "typo"}
    )
    assert refused.status_code == 422  # unknown keys are refused at the edge
