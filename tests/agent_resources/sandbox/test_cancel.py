"""A cancelled function-agent call kills its sandboxed process at once (a step's timeout or
an aborted run), instead of letting it run to its own wall-clock limit."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from agent_resources.cancel import Cancellation
from agent_resources.sandbox.process import Limits, SandboxError, run_in_sandbox
from tests.agent_resources.sandbox.test_process import PAYLOAD

# A hang guard, not a speed figure: uncancelled, the child would sleep for ten minutes.
GUARD_SECONDS = 60.0
SLEEPER = (
    "import time, sys\ndef run(input, ctx):\n    print('up', flush=True)\n    time.sleep(600)\n"
)


def test_cancelling_kills_the_sandboxed_process() -> None:
    limits = Limits(timeout_seconds=600, cpu_seconds=600, memory_mb=256, max_output_bytes=10_000)
    cancellation = Cancellation()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["answer"] = run_in_sandbox(
                {**PAYLOAD, "code": SLEEPER},
                env={},
                limits=limits,
                guards=False,
                cancellation=cancellation,
            )
        except SandboxError as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(1.0)  # let the child start (a cancel before it started kills it as well)
    cancellation.cancel()
    thread.join(GUARD_SECONDS)
    assert not thread.is_alive()
    assert "answer" not in box, box
    assert box["error"].kind == "timeout"
    assert "cancelled" in str(box["error"])


def test_a_call_cancelled_before_it_starts_is_killed_as_it_starts() -> None:
    limits = Limits(timeout_seconds=600, cpu_seconds=600, memory_mb=256, max_output_bytes=10_000)
    cancellation = Cancellation()
    cancellation.cancel()
    with pytest.raises(SandboxError, match="cancelled"):
        run_in_sandbox(
            {**PAYLOAD, "code": SLEEPER},
            env={},
            limits=limits,
            guards=False,
            cancellation=cancellation,
        )
