"""Calling an agent from an op: a wall-clock limit and a uniform view of failures."""

import threading
import time
from dataclasses import dataclass
from typing import Any

from agent_resources.base import AgentError, AgentRequest, AgentResult
from agent_resources.resources import AgentResource

# A server's Retry-After is honoured up to this many seconds; longer waits use the policy.
MAX_RETRY_AFTER_SECONDS = 300.0
# Longest single wait of a call with a timeout (see call_agent).
JOIN_SLICE_SECONDS = 0.25


@dataclass(frozen=True)
class CallFailure:
    """How a failed call should be treated."""

    kind: str
    retryable: bool
    retry_after: float | None


def classify(exc: BaseException) -> CallFailure:
    """AgentErrors say what they are; anything else is an unexpected, retryable failure."""
    if isinstance(exc, AgentError):
        after = exc.retry_after
        if after is not None:
            after = min(max(after, 0.0), MAX_RETRY_AFTER_SECONDS)
        return CallFailure(exc.kind, exc.retryable, after)
    return CallFailure("internal", True, None)


def call_agent(
    agent: AgentResource,
    request: AgentRequest,
    timeout: float | None,
    wait: float | None = None,
    *,
    grace: float = 10.0,
) -> AgentResult:
    """``agent.run`` with an optional wall-clock limit, stopped for real when it passes.

    ``wait`` is what is left of ``timeout`` when part of it went to rendering the step's
    templates; the error still names the step's ``timeout``. Past the limit, or when the op is
    interrupted (an abort), the request's cancellation closes the agent's client or kills its
    process, and this waits up to ``grace`` seconds for the call to end, so a retry never
    overlaps the call it replaces.

    Raises:
        AgentError: the agent's own errors, or kind ``timeout`` when the limit passes.
    """
    if timeout is None:
        # In this thread: an abort's interrupt unwinds the call itself, closing its client.
        return agent.run(request=request)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = agent.run(request=request)
        except BaseException as exc:
            box["error"] = exc

    # A daemon thread: a call that ignores its cancellation must not keep the worker alive.
    worker = threading.Thread(target=target, daemon=True, name=f"agent-{request.step_id}")
    limit = timeout if wait is None else min(wait, timeout)
    deadline = time.monotonic() + limit
    try:
        worker.start()  # inside: an abort can land while start() waits for the thread
        # Short joins: on the threaded executor an abort arrives as an exception raised in this
        # (non-main) thread, which only lands between bytecodes, not inside one long join.
        while worker.is_alive() and (left := deadline - time.monotonic()) > 0:
            worker.join(min(left, JOIN_SLICE_SECONDS))
    except BaseException:  # the run is being aborted: stop the call before unwinding
        _stop(request, worker, grace)
        raise
    if worker.is_alive():
        _stop(request, worker, grace)
        raise AgentError(f"timed out after {timeout:g} s (timeout_seconds)", kind="timeout")
    if "error" in box:
        raise box["error"]
    return box["result"]


def _stop(request: AgentRequest, worker: threading.Thread, grace: float) -> None:
    request.cancellation.cancel()
    worker.join(grace)
