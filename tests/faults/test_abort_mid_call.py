"""An abort while an agent call is in flight, on a real deployment (`baton up`, Postgres for
both stores): the call is stopped (the agent's server sees its client close the connection),
the step is `cancelled`, the Dagster run ends CANCELED, and the step's retry policy does not
call again."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from tests.e2e.deploy import graphql
from tests.faults.conftest import deployment_env
from tests.faults.deployment import Deployment, deployed, dump, steps, wait_for
from tests.orchestration_defs.calls_server import HANG, CallsServer

pytestmark = [pytest.mark.fault, pytest.mark.slow]

RUN_STATUS = '{ runOrError(runId: "%s") { ... on Run { status } } }'


def _dagster_status(d: Deployment, dagster_run_id: str) -> str:
    return str(graphql(d.ui, RUN_STATUS % dagster_run_id)["runOrError"]["status"])


def _owner(d: Deployment, run_id: uuid.UUID) -> str:
    [step] = [s for s in d.store.run_detail(run_id).steps if s.step_id == "work"]
    assert step.dagster_run_id is not None
    return step.dagster_run_id


def test_an_abort_stops_the_agent_call_in_flight_and_cancels_the_step(
    stores: tuple[str, str | None], library: Path, agent: CallsServer, tmp_path: Path
) -> None:
    with deployed(deployment_env(library, agent, *stores), tmp_path) as d:
        ops = d.token("ops", "operator")
        agent.script.append(HANG)  # held until its client goes away
        run_id = d.launch(ops, "fault-mid")  # `work` has retry: {max_attempts: 2}
        wait_for("work's agent call", lambda: len(agent.calls) == 1)
        owner = _owner(d, run_id)

        body = {"reason": "wrong customer"}
        aborted_at = time.monotonic()
        d.call("POST", f"/api/v1/runs/{run_id}/abort", ops, json=body)
        wait_for("the call closed by its client", lambda: agent.calls[0].ended is not None)
        stopped = time.monotonic() - aborted_at
        wait_for("the Dagster run CANCELED", lambda: _dagster_status(d, owner) == "CANCELED")
        canceled = time.monotonic() - aborted_at
        time.sleep(5)  # a retry under the step's policy would have called by now

        assert agent.calls[0].closed_by_client
        assert agent.keys == [f"{run_id}:work:1"], dump(agent.keys)
        assert d.status(run_id) == "aborted"
        assert steps(d.store, run_id) == {"work": "cancelled"}
        audit = d.call("GET", f"/api/v1/runs/{run_id}/audit", ops)["items"]
        assert [(a["action"], a["outcome"], a["reason"]) for a in audit] == [
            ("abort", "accepted", "wrong customer")
        ]
    print(
        f"\nabort -> the agent's connection closed in {stopped:.1f} s, "
        f"the Dagster run CANCELED in {canceled:.1f} s"
    )
