"""An abort reaches a step running in a worker thread of the threaded executor."""

from __future__ import annotations

import threading

from dagster._core.errors import DagsterExecutionInterruptedError

from agent_resources.base import AgentRequest, AgentResult
from agent_resources.resources import AgentResource
from orchestration_defs.compiler.agent_call import call_agent
from orchestration_defs.compiler.threaded_executor import _interrupt

RUNNING = threading.Event()


class Blocking(AgentResource):
    """Waits until its request is cancelled (as an HTTP agent closing its client would)."""

    def run(self, *, request: AgentRequest) -> AgentResult:
        RUNNING.set()
        request.cancellation.sleep(60)
        return AgentResult(output={"cancelled": request.cancellation.cancelled})


def test_an_interrupt_cancels_a_call_with_a_timeout_in_a_worker_thread() -> None:
    request = AgentRequest(run_id="r", step_id="s", attempt=1, input={})
    outcome: dict[str, BaseException] = {}

    def step() -> None:
        try:
            call_agent(Blocking(slug="blocking"), request, timeout=120, grace=5)
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=step)
    thread.start()
    assert RUNNING.wait(10)  # the call is in flight, inside call_agent's wait
    _interrupt(thread)
    thread.join(10)
    assert not thread.is_alive()
    assert isinstance(outcome["error"], DagsterExecutionInterruptedError)
    assert request.cancellation.cancelled
