"""kill -9 of a real deployment (`baton up`; both stores on SQLite, then on Postgres): the
whole of it with one run waiting at a checkpoint and one mid-step, and the daemon alone between
a decision and its tick. The agents are one local HTTP server counting calls and keys."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest

from tests.e2e.deploy import graphql
from tests.faults.conftest import FAST_REAPER, deployment_env
from tests.faults.deployment import Deployment, deployed, dump, recover, steps, wait_for
from tests.orchestration_defs.calls_server import HANG, CallsServer

pytestmark = [pytest.mark.fault, pytest.mark.slow]

RUNS_QUERY = "{ runsOrError { ... on Runs { results { runId status } } } }"
ENDED = {"SUCCESS", "FAILURE", "CANCELED"}


def _approval(d: Deployment, headers: dict[str, str], run_id: uuid.UUID) -> str:
    page = d.call("GET", "/api/v1/approvals", headers, params={"run_id": str(run_id)})
    [approval] = [a for a in page["items"] if a["status"] == "pending"]
    return str(approval["approval_id"])


def _decide(d: Deployment, headers: dict[str, str], approval_id: str) -> None:
    body = {"decision": "continue"}
    d.call("POST", f"/api/v1/approvals/{approval_id}/decision", headers, json=body)


def _keys(agent: CallsServer, run_id: uuid.UUID, step: str) -> list[str | None]:
    return [k for k in agent.keys if k and k.startswith(f"{run_id}:{step}:")]


def _segments(d: Deployment, headers: dict[str, str], run_id: uuid.UUID) -> list[dict[str, str]]:
    return list(d.call("GET", f"/api/v1/runs/{run_id}", headers)["segments"])


def _segment_statuses(d: Deployment, headers: dict[str, str], run_id: uuid.UUID) -> list[str]:
    return [s["status"] for s in _segments(d, headers, run_id)]


def _dagster_statuses(d: Deployment) -> list[str]:
    runs = graphql(d.ui, RUNS_QUERY)["runsOrError"]["results"]
    return [r["status"] for r in runs]


def test_kill_9_of_the_whole_deployment_with_a_run_waiting_and_one_mid_step(
    stores: tuple[str, str | None], library: Path, agent: CallsServer, tmp_path: Path
) -> None:
    env = deployment_env(library, agent, *stores, **FAST_REAPER)
    with deployed(env, tmp_path) as d:
        ops = d.token("ops", "operator")
        ann = d.token("ann", "approver", "editors")
        waiting = d.launch(ops, "fault-wait")
        d.wait_status(waiting, "awaiting_approval")
        agent.script.append(HANG)  # the next call is held until its client goes away
        mid = d.launch(ops, "fault-mid")
        wait_for("work's agent call", lambda: bool(_keys(agent, mid, "work")))

        killed = d.kill9()
        killed_at = time.monotonic()
        assert killed >= 4, "webserver, daemon, API and the run worker at least"
        d.start()
        wait_for("the reaper", lambda: steps(d.store, mid) != {"work": "running"})
        path = recover(d, mid, "work")
        d.wait_status(mid, "completed")
        recovery = time.monotonic() - killed_at
        assert d.status(waiting) == "awaiting_approval"  # the restart did not touch it
        _decide(d, ann, _approval(d, ann, waiting))
        d.wait_status(waiting, "completed")
        # A run is completed by its last step, just before its segment's worker ends in Dagster.
        for run_id in (mid, waiting):
            wait_for(
                f"{run_id}'s segments ended in Dagster",
                lambda: set(_segment_statuses(d, ops, run_id)) <= ENDED,  # noqa: B023
            )

        # The interrupted call was presented again under its key; nothing else was doubled.
        assert _keys(agent, mid, "work") == [f"{mid}:work:1"] * 2, dump(agent.keys)
        assert agent.calls[agent.keys.index(f"{mid}:work:1")].closed_by_client
        assert _keys(agent, waiting, "draft") == [f"{waiting}:draft:1"]
        assert _keys(agent, waiting, "publish") == [f"{waiting}:publish:1"]
        assert steps(d.store, mid) == {"work": "completed"}
        assert set(steps(d.store, waiting).values()) == {"completed"}
        # Mid: the killed segment (ended FAILURE by the reaper or run monitoring) and the retry.
        assert [s["status"] for s in _segments(d, ops, mid)] == ["FAILURE", "SUCCESS"]
        assert [s["status"] for s in _segments(d, ops, waiting)] == ["SUCCESS", "SUCCESS"]
        assert set(_dagster_statuses(d)) <= ENDED, "no Dagster run left STARTED"
        events = [e.type for e in d.store.run_detail(mid).events]
        assert "step.orphaned" in events
    print(f"\nrecovery of the mid-step run after the kill ({path}): {recovery:.1f} s")


@pytest.mark.parametrize("killed", ["daemon", "deployment"])
def test_kill_9_between_a_decision_and_its_tick(
    killed: str, stores: tuple[str, str | None], library: Path, agent: CallsServer, tmp_path: Path
) -> None:
    # A claim the killed API never started is taken over by the approval sensor after this.
    env = deployment_env(
        library, agent, *stores, BATON_SENSORS__CLAIM_LEASE_SECONDS="10", **FAST_REAPER
    )
    with deployed(env, tmp_path) as d:
        ops = d.token("ops", "operator")
        ann = d.token("ann", "approver", "editors")
        run_id = d.launch(ops, "fault-wait")
        d.wait_status(run_id, "awaiting_approval")
        # The pause's own segment ends in Dagster just after the run is awaiting approval:
        # the kill is meant for the decision's launch, not for that worker winding down.
        wait_for(
            "the paused segment ended", lambda: _segment_statuses(d, ops, run_id) == ["SUCCESS"]
        )
        approval = _approval(d, ann, run_id)
        if killed == "daemon":
            # The decision lands while no daemon runs: its segment waits in Dagster's queue
            # until `baton up` has restarted the daemon.
            os.kill(d.child_pid("dagster-daemon"), signal.SIGKILL)
            killed_at = time.monotonic()
            _decide(d, ann, approval)
        else:
            _decide(d, ann, approval)
            d.kill9()
            killed_at = time.monotonic()
            d.start()
        d.wait_status(run_id, "completed")
        recovery = time.monotonic() - killed_at
        time.sleep(6)  # a sensor tick more: a second launch would show now
        assert _segment_statuses(d, ops, run_id) == ["SUCCESS", "SUCCESS"]
        assert _keys(agent, run_id, "draft") == [f"{run_id}:draft:1"]
        assert _keys(agent, run_id, "publish") == [f"{run_id}:publish:1"]
        assert set(_dagster_statuses(d)) <= ENDED
    print(f"\nrecovery after kill -9 of the {killed}: {recovery:.1f} s")
