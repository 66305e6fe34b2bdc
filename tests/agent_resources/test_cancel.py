"""Stopping a running agent call: the HTTP agents' connections are shut, also while a thread
is blocked reading the answer, and a cancelled poll loop stops at once."""

from __future__ import annotations

import threading
from typing import Any

from agent_resources.api import ApiAgent
from agent_resources.base import AgentError, AgentRequest
from agent_resources.cancel import Cancellation
from agent_resources.catalog import agent_catalog
from tests.orchestration_defs.calls_server import HANG, CallsServer

# A hang guard, not a speed figure: without cancellation the call would block for an hour.
GUARD_SECONDS = 60.0


def _request(url: str) -> AgentRequest:
    env = {"N8N_BASE_URL": url, "N8N_API_KEY": "k"}
    return AgentRequest(
        run_id="run-1",
        step_id="s",
        attempt=1,
        call=1,
        input={},
        env=env,
        timeout_seconds=3600,
    )


def _in_thread(agent: ApiAgent, request: AgentRequest) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = agent.run(request)
        except AgentError as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, box


def _agent(**config: Any) -> ApiAgent:
    entry = agent_catalog()["marketing-swarm"]
    return ApiAgent(entry.model_copy(update={"config": {**entry.config, **config}}))


def test_callbacks_run_once_also_when_registered_after_the_cancel() -> None:
    seen: list[str] = []
    cancellation = Cancellation()
    cancellation.on_cancel(lambda: seen.append("before"))
    cancellation.cancel()
    cancellation.cancel()
    cancellation.on_cancel(lambda: seen.append("after"))
    assert seen == ["before", "after"] and cancellation.cancelled
    assert cancellation.sleep(3600) is True  # returns at once once cancelled


def test_a_failing_callback_does_not_keep_the_others_back() -> None:
    seen: list[int] = []
    cancellation = Cancellation()

    def boom() -> None:
        raise RuntimeError("a half-dead client")

    cancellation.on_cancel(boom)
    cancellation.on_cancel(lambda: seen.append(1))
    cancellation.cancel()
    assert seen == [1]


def test_cancelling_a_blocked_request_closes_its_connection() -> None:
    with CallsServer([HANG]).running() as server:
        request = _request(server.url)
        thread, box = _in_thread(_agent(mode="sync"), request)
        while not server.calls:  # the request reached the server and is waiting there
            thread.join(0.01)
        request.cancellation.cancel()
        thread.join(GUARD_SECONDS)
        assert not thread.is_alive()
        assert box["error"].kind == "timeout"
        [call] = server.calls
        while call.ended is None:  # the server's handler notices the close on its own thread
            thread.join(0.01)
        assert call.closed_by_client
        assert call.key == "run-1:s:1"


def test_a_cancelled_poll_stops_polling() -> None:
    with CallsServer([202]).running() as server:
        # The POST answers an execution id; polling then waits for an hour between GETs.
        agent = _agent(mode="poll", poll_interval_seconds=3600, execution_id_field="call")
        request = _request(server.url)
        thread, box = _in_thread(agent, request)
        while not server.calls:
            thread.join(0.01)
        request.cancellation.cancel()
        thread.join(GUARD_SECONDS)
        assert not thread.is_alive()
        assert "error" in box
