"""The parent side: the worker makes itself undumpable, and a child that breaks the pipe
protocol fails only its own call."""

from __future__ import annotations

import ctypes
import sys

import pytest

from agent_resources.sandbox.process import Limits, SandboxError, run_in_sandbox
from tests.agent_resources.sandbox.attacks import attempt

PAYLOAD = {
    "slug": "p",
    "entrypoint": "run",
    "imports": [],
    "env_names": [],
    "params": {},
    "input": None,
    "run_id": "r",
    "step_id": "s",
    "attempt": 1,
}


@pytest.mark.skipif(sys.platform != "linux", reason="prctl is Linux's")
def test_the_worker_is_undumpable_once_it_ran_a_function_agent() -> None:
    result, text = attempt("def run(input, ctx):\n    return 1\n", {})
    assert result is not None, text
    assert ctypes.CDLL(None).prctl(3, 0, 0, 0, 0) == 0  # PR_GET_DUMPABLE


def test_a_forged_frame_on_the_result_pipe_fails_the_call_only() -> None:
    code = (
        "import os, sys\n"
        "def run(input, ctx):\n"
        "    fd = int(sys.argv[-1])  # the result pipe\n"
        "    os.write(fd, b'\\x00\\x00\\x00\\x05\\x00\\x00\\x00\\x00[1,2]')\n"
        "    os._exit(0)\n"
    )
    limits = Limits(timeout_seconds=5, cpu_seconds=2, memory_mb=256, max_output_bytes=10_000)
    with pytest.raises(SandboxError) as caught:
        run_in_sandbox({**PAYLOAD, "code": code}, env={}, limits=limits, guards=False)
    assert caught.value.kind == "sandbox"
    assert "malformed frame" in str(caught.value)


def test_an_answer_frame_larger_than_the_cap_is_refused_from_its_header() -> None:
    code = (
        "import os, sys\n"
        "def run(input, ctx):\n"
        "    os.write(int(sys.argv[-1]), (10**9).to_bytes(4, 'big') + bytes(4))\n"
        "    os._exit(0)\n"
    )
    limits = Limits(timeout_seconds=5, cpu_seconds=2, memory_mb=256, max_output_bytes=10_000)
    with pytest.raises(SandboxError, match="output limit of 10000 bytes exceeded"):
        run_in_sandbox({**PAYLOAD, "code": code}, env={}, limits=limits, guards=False)
