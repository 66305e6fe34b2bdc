"""Namespaces and process flags of the sandbox child, and the whole sandbox run by an
unprivileged worker (the path CI's root worker does not take)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

NAMESPACES = """
import json, os, socket, sys
sys.path.append({root!r})
from agent_resources.sandbox import _isolate
outer = os.getpid()
held = _isolate.enter_namespaces(frozenset({skip!r}), (0, 1, 2, {fd}))
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2)
    net = "connected"
except OSError as exc:
    net = exc.__class__.__name__
report = {{"held": held, "pid": os.getpid(), "outer": outer, "net": net,
          "uid_map": open("/proc/self/uid_map").read().strip()}}
os.write({fd}, json.dumps(report).encode())
"""


def _in_child(skip: set[str]) -> dict[str, object]:
    server = socket.create_server(("127.0.0.1", 0))
    read, write = os.pipe()
    try:
        port = server.getsockname()[1]
        code = NAMESPACES.format(root=str(ROOT), skip=sorted(skip), port=port, fd=write)
        done = subprocess.run(
            [sys.executable, "-I", "-c", textwrap.dedent(code)],
            pass_fds=(write,),
            capture_output=True,
            timeout=60,
        )
        os.close(write)
        write = -1
        assert done.returncode == 0, done.stderr.decode()
        return dict(json.loads(os.read(read, 65536)))
    finally:
        server.close()
        os.close(read)
        if write >= 0:
            os.close(write)


def test_the_child_has_its_own_user_network_and_pid_namespaces() -> None:
    report = _in_child(set())
    assert report["held"] == {"user_ns": True, "net_ns": True, "pid_ns": True}
    assert report["pid"] == 1  # the first process of its own PID namespace
    assert report["net"] in ("OSError", "ConnectionRefusedError")  # no route: loopback is down
    assert report["uid_map"] == ""  # nothing of the host's users is mapped in


def test_layers_marked_unavailable_are_not_even_tried() -> None:
    report = _in_child({"user_ns", "net_ns", "pid_ns"})
    assert report["held"] == {"user_ns": False, "net_ns": False, "pid_ns": False}
    assert report["pid"] == report["outer"] and report["net"] == "connected"


UNPRIVILEGED = """
import json, os, sys
sys.path[:0] = [{root!r}, {site!r}]
from agent_resources.sandbox.process import Limits, run_in_sandbox
code = '''
import os
def run(input, ctx):
    got = []
    for path in ("/etc/passwd", f"/proc/{{input}}/environ"):
        try:
            got.append(open(path).read())
        except OSError as exc:
            got.append(type(exc).__name__)
    return got
'''
payload = {{"slug": "u", "code": code, "entrypoint": "run", "imports": ["os"], "env_names": [],
           "params": {{}}, "input": os.getpid(), "run_id": "r", "step_id": "s", "attempt": 1}}
answer = run_in_sandbox(payload, env={{}}, limits=Limits(20, 5, 256, 100000), guards=False)
print(json.dumps({{"uid": os.getuid(), "answer": answer}}))
"""


# It must be able to start its own interpreter again, as the sandbox does.
_RUNNABLE = (
    "import os, sys; assert sys.version_info >= (3, 11); assert os.access(sys.executable, 1)"
)


def _unprivileged_python() -> str | None:
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        return None
    for python in (sys.executable, "/usr/bin/python3"):
        probe = subprocess.run(
            [*_as_nobody(), python, "-c", _RUNNABLE],
            capture_output=True,
            timeout=30,
        )
        if probe.returncode == 0:
            return python
    return None


def _as_nobody() -> list[str]:
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]


def test_an_unprivileged_worker_gets_every_layer() -> None:
    python = _unprivileged_python()
    if python is None:
        pytest.skip("needs root, setpriv and a Python 3.11+ that nobody can run")
    site = next(p for p in sys.path if p.endswith("site-packages"))
    code = UNPRIVILEGED.format(root=str(ROOT), site=site)
    done = subprocess.run(
        [*_as_nobody(), python, "-I", "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["uid"] == 65534
    answer = report["answer"]
    assert answer["ok"], answer
    assert answer["output"] == ["PermissionError", "PermissionError"]
    held = answer["sandbox"]
    assert all(held[n] for n in ("user_ns", "net_ns", "pid_ns", "landlock", "seccomp")), held
