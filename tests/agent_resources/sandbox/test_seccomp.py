"""The kernel side of the sandbox, tested without the audit hook: whatever the agent's code
does to the interpreter, the seccomp filter still refuses processes, exec, signals to others
and file writes, while reading, threads and sockets keep working."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent_resources.sandbox.runner import SECCOMP_FILE

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or platform.machine() not in ("x86_64", "aarch64"),
    reason="the seccomp filter is written for Linux on x86_64 and aarch64",
)

PROBE = """
import importlib.util, os, socket, threading
spec = importlib.util.spec_from_file_location("_seccomp", {file!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
assert module.install()

def refused(what, call):
    try:
        call()
    except PermissionError:
        return
    raise SystemExit(f"not refused: {{what}}")

refused("fork", os.fork)
refused("exec", lambda: os.execv("/bin/true", ["true"]))
refused("posix_spawn", lambda: os.posix_spawn("/bin/true", ["true"], {{}}))
refused("write", lambda: open({target!r}, "w"))
refused("append", lambda: open({existing!r}, "a"))
refused("unlink", lambda: os.unlink({existing!r}))
refused("rename", lambda: os.rename({existing!r}, {target!r}))
refused("mkdir", lambda: os.mkdir({target!r}))
refused("chmod", lambda: os.chmod({existing!r}, 0o777))
refused("kill parent", lambda: os.kill(os.getppid(), 0))
refused("setsid", os.setsid)
assert open({existing!r}).read() == "keep"
done = []
thread = threading.Thread(target=lambda: done.append(1)); thread.start(); thread.join()
assert done == [1]
socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
print("ok")
"""


def test_the_filter_refuses_what_the_kernel_can_refuse(tmp_path: Path) -> None:
    existing = tmp_path / "existing.txt"
    existing.write_text("keep")
    target = tmp_path / "new.txt"
    code = PROBE.format(file=SECCOMP_FILE, target=str(target), existing=str(existing))
    done = subprocess.run(
        [sys.executable, "-I", "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "ok"
    assert existing.read_text() == "keep" and not target.exists()


def test_function_agents_run_under_the_filter() -> None:
    from tests.agent_resources.sandbox.test_attacks import call

    assert call("def run(input, ctx):\n    return 1\n").usage["seccomp"] is True
