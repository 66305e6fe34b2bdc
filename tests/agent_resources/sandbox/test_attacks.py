"""Every sandbox attack fails its own call with an error naming the limit; the worker lives on.

These run real child processes (no mocks): the agent's code is what an attacker would write,
including the usual escape from restricted builtins through ``object.__subclasses__()``. The
attacks with the Python guards switched off (arbitrary Python, ctypes at hand) are in
``test_kernel_layers.py``.
"""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from agent_resources.base import AgentError, AgentRequest, AgentResult
from agent_resources.catalog import AgentEntry
from agent_resources.function import FunctionAgent

# The classic escape: reach the os module's globals without importing anything.
OS = (
    "[c for c in ().__class__.__base__.__subclasses__() "
    "if c.__name__ == '_wrap_close'][0].__init__.__globals__"
)
SECRET = "sk-sandboxsecret0123456789abcdef"


def agent(code: str, **limits: Any) -> FunctionAgent:
    entry = AgentEntry.model_validate(
        {
            "slug": "attacker",
            "type": "function",
            "description": "test",
            "config": {"code": textwrap.dedent(code)},
            "env": [{"name": "ATTACKER_API_KEY", "secret": True}],
            "limits": {"timeout_seconds": 4, "cpu_seconds": 1, "memory_mb": 256, **limits},
        }
    )
    return FunctionAgent(entry)


def call(code: str, **limits: Any) -> AgentResult:
    request = AgentRequest(
        run_id="run-1",
        step_id="step",
        attempt=1,
        input={"n": 1},
        env={"ATTACKER_API_KEY": SECRET},
    )
    return agent(code, **limits).run(request)


def refused(code: str, **limits: Any) -> AgentError:
    with pytest.raises(AgentError) as caught:
        call(code, **limits)
    assert not caught.value.retryable, "an attack must not be retried"
    return caught.value


def test_well_behaved_code_runs_and_keeps_bytes_through_the_parent() -> None:
    result = call(
        """
        import json, hashlib
        def run(input, ctx):
            ref = ctx.assets.save_bytes("note.txt", b"hello", mime_type="text/plain")
            ctx.deliverables.create("text", name="note", asset=ref, metadata={"k": 1})
            print("working")
            return {"n": input["n"] + 1, "sha": hashlib.sha256(b"hello").hexdigest()[:8]}
        """
    )
    assert result.output == {"n": 2, "sha": "2cf24dba"}
    [note] = result.deliverables
    assert (note.name, note.type, note.data, note.mime_type) == (
        "note",
        "text",
        b"hello",
        "text/plain",
    )
    assert "working" in result.usage["log"]


def test_a_forbidden_import_is_refused_and_named() -> None:
    error = refused("import os\ndef run(input, ctx):\n    return 1\n")
    assert error.kind == "sandbox"
    assert "import of 'os' is not allowed" in str(error)


def test_reaching_for_subprocess_through_importlib_is_refused() -> None:
    error = refused(
        f"""
        def run(input, ctx):
            g = {OS}
            return str(g["sys"].modules["importlib"].import_module("subprocess"))
        """
    )
    assert "sandbox: import of" in str(error)


def test_an_undeclared_env_var_cannot_be_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOMETHING_UNDECLARED", "visible-to-the-worker")
    error = refused("def run(input, ctx):\n    return ctx.env['SOMETHING_UNDECLARED']\n")
    assert "env var 'SOMETHING_UNDECLARED' is not declared by agent 'attacker'" in str(error)
    # Nor through the process environment: the child holds only the declared variables.
    result = call(f"def run(input, ctx):\n    return sorted({OS}['environ'])\n")
    assert result.output == ["ATTACKER_API_KEY", "LANG"]


@pytest.mark.parametrize(
    "how",
    [
        "open('{path}', 'w')",
        "{os}['sys'].modules['io'].open('{path}', 'w')",
        "{os}['open']('{path}', 0o101)",
        "{os}['mkdir']('{path}')",
    ],
    ids=["builtin-open", "io-open", "os-open", "mkdir"],
)
def test_writing_a_file_is_refused(tmp_path: Path, how: str) -> None:
    target = tmp_path / "written"
    expr = how.format(path=target, os=OS)
    error = refused(f"def run(input, ctx):\n    return str({expr})\n")
    assert error.kind in ("sandbox", "client")
    assert "not allowed" in str(error) or "'open' is not defined" in str(error)
    assert not target.exists()


def test_reading_outside_the_python_installation_is_refused() -> None:
    error = refused(
        f"def run(input, ctx):\n    return {OS}['sys'].modules['io'].open('/etc/passwd').read()\n"
    )
    assert "reading files outside the Python installation" in str(error)


def test_an_endless_loop_hits_the_cpu_limit() -> None:
    started = time.monotonic()
    error = refused("def run(input, ctx):\n    while True:\n        pass\n", cpu_seconds=1)
    assert error.kind == "limit"
    assert "CPU time limit of 1 s exceeded" in str(error)
    assert time.monotonic() - started < 4


def test_a_sleeping_loop_hits_the_wall_clock() -> None:
    code = "import time\ndef run(input, ctx):\n    while True:\n        time.sleep(0.2)\n"
    error = refused(code, timeout_seconds=1.5)
    assert "wall-clock limit of 1.5 s exceeded" in str(error)


def test_a_memory_bomb_hits_the_memory_limit() -> None:
    code = "def run(input, ctx):\n    x = []\n    while True:\n        x.append(bytearray(10**7))\n"
    error = refused(code, memory_mb=200)
    assert error.kind == "limit"
    assert "memory limit of 200 MB exceeded" in str(error)


@pytest.mark.parametrize(
    "call_", ["g['fork']()", "g['system']('echo hi')", "g['execv']('/bin/sh', ['sh'])"]
)
def test_a_fork_bomb_cannot_create_a_process(call_: str) -> None:
    code = f"def run(input, ctx):\n    g = {OS}\n    while True:\n        {call_}\n"
    error = refused(code)
    assert error.kind == "sandbox"
    assert "creating processes is not allowed" in str(error)


def test_a_refusal_caught_by_the_code_still_fails_the_call() -> None:
    error = refused(
        f"""
        def run(input, ctx):
            try:
                {OS}["fork"]()
            except Exception:
                pass
            return "carried on"
        """
    )
    assert "creating processes is not allowed (os.fork)" in str(error)


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("def run(input, ctx):\n    return 'x' * 3_000_000\n", "output limit of 1000000 bytes"),
        (
            "def run(input, ctx):\n    ctx.assets.save_bytes('big', b'x' * 2_000_000)\n",
            "output limit of 1000000 bytes exceeded by asset 'big'",
        ),
        (
            f"def run(input, ctx):\n    while True:\n        {OS}['write'](1, b'x' * 65536)\n",
            "output limit: more than 64000 bytes written to stdout",
        ),
    ],
    ids=["return-value", "asset", "stdout-flood"],
)
def test_huge_output_hits_the_output_limit(code: str, message: str) -> None:
    error = refused(code, max_output_bytes=1_000_000)
    assert error.kind == "limit"
    assert message in str(error)


def test_printing_a_lot_is_kept_short_in_the_log() -> None:
    result = call("def run(input, ctx):\n    print('y' * 500_000)\n    return 1\n")
    assert result.output == 1
    assert len(result.usage["log"]) <= 4000


def test_a_host_the_entry_does_not_allow_is_refused_by_the_parent() -> None:
    code = "def run(input, ctx):\n    return ctx.http.get('http://127.0.0.2:9/').text\n"
    error = refused(code)
    assert error.kind == "sandbox"
    assert "network access to host '127.0.0.2' is not allowed" in str(error)


def test_the_network_is_off_inside() -> None:
    sock = f"{OS}['sys'].modules['builtins'].__import__('socket')"
    error = refused(f"def run(input, ctx):\n    {sock}.socket()\n")
    assert error.kind == "sandbox"
    assert "the network is off in function agents (use ctx.http)" in str(error)


def test_a_secret_value_is_masked_in_output_and_errors() -> None:
    result = call("def run(input, ctx):\n    return ctx.env['ATTACKER_API_KEY']\n")
    assert result.output == "***"
    error = refused("def run(input, ctx):\n    ctx.fail('key is ' + ctx.env['ATTACKER_API_KEY'])\n")
    assert SECRET not in str(error)


def test_the_worker_survives_every_attack_and_leaves_no_process() -> None:
    pid = os.getpid()
    refused("def run(input, ctx):\n    while True:\n        pass\n", cpu_seconds=1)
    refused(
        "def run(input, ctx):\n    x = []\n    while True:\n        x.append(bytearray(10**7))\n"
    )
    assert os.getpid() == pid
    assert call("def run(input, ctx):\n    return 'still here'\n").output == "still here"
    children = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _parent(p) == pid]
    assert children == [], "a sandboxed child outlived its call"


def _parent(proc: Path) -> int | None:
    try:
        fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[1])
    except (OSError, IndexError, ValueError):
        return None


def test_code_that_does_not_compile_names_the_problem() -> None:
    error = refused("def run(input, ctx) return 1\n")
    assert error.kind == "config"
    assert "does not compile" in str(error)


def test_a_retryable_failure_from_the_code_is_retryable() -> None:
    code = "def run(input, ctx):\n    ctx.fail('busy', retryable=True, retry_after=2)\n"
    with pytest.raises(AgentError) as caught:
        call(code)
    assert caught.value.retryable and caught.value.retry_after == 2


def test_patching_the_runner_or_builtins_does_not_loosen_the_hook(tmp_path: Path) -> None:
    target = tmp_path / "written"
    error = refused(
        f"""
        def run(input, ctx):
            g = {OS}
            main = g["sys"].modules["__main__"]
            main.DENIED_MODULES = frozenset()
            main._WRITE_EVENTS = frozenset()
            g["__builtins__"]["isinstance"] = lambda *a: False
            return g["sys"].modules["io"].open("{target}", "w")
        """
    )
    assert "writing files is not allowed" in str(error)
    assert not target.exists()


def test_frames_behind_the_code_are_out_of_reach() -> None:
    error = refused(
        """
        def run(input, ctx):
            try:
                1 / 0
            except ZeroDivisionError as exc:
                return str(exc.__traceback__.tb_frame.f_back.f_locals)
        """
    )
    assert "introspecting the interpreter is not allowed" in str(error)
