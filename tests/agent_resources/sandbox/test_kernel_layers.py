"""The kernel layers hold on their own: attacks as real function-agent calls, with the Python
guards switched off (the attacker has arbitrary Python: every builtin, ``import ctypes``, raw
system calls), and again through the usual escape with the guards on.

Each attack reports what it got; the tests check that nothing outside the declared files and
hosts was reached (the servers here count what arrives), the worker survives, and no secret of
the worker (its environment, its data folder's key, other runs' assets) appears anywhere in
the answer, the log or the error, plainly, in base64 or in hex.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.agent_resources.sandbox.attacks import (
    FILE_ATTACKS,
    HARNESS,
    NETWORK_ATTACKS,
    OS,
    SYSCALL_ATTACKS,
    WORKER_SECRET,
    Listener,
    assert_no_secret,
    attempt,
)
from tests.fakes.http import FakeServer, Reply


def test_files_outside_python_are_unreadable_and_nothing_is_writable(
    worker_secrets: dict[str, Any],
) -> None:
    result, text = attempt(FILE_ATTACKS + HARNESS, worker_secrets)
    assert result is not None, text
    outcome = result.output
    assert set(outcome) >= {"read_each", "list_each", "write", "parent_fds", "fd_scan"}
    for name, said in outcome.items():
        if name == "fd_scan":  # the result pipe is the only fd above 2; reading it fails
            assert said.startswith("refused"), said
            continue
        assert said.startswith("refused"), f"{name}: {said[:300]}"
    assert not Path(worker_secrets["write"]).exists()
    assert_no_secret(text)


def test_the_child_inherits_no_descriptor_but_its_pipes(tmp_path: Path) -> None:
    leaked = open(tmp_path / "worker-file", "w")  # noqa: SIM115 - kept open across the call
    number = leaked.fileno()
    os.set_inheritable(number, True)
    try:
        result, text = attempt("def run(input, ctx):\n    return 1\n", {})
    finally:
        leaked.close()
    assert result is not None, text
    fds = result.usage["sandbox"]["fds"]
    assert fds[:3] == [0, 1, 2] and len(fds) == 4, fds  # stdin, stdout, stderr, the result pipe
    assert number not in fds


@pytest.mark.parametrize("guarded", [False, True], ids=["unguarded", "guarded"])
def test_system_calls_that_reach_other_processes_are_refused(
    worker_secrets: dict[str, Any], guarded: bool
) -> None:
    code = SYSCALL_ATTACKS + HARNESS
    if guarded:  # the guards refuse `import ctypes`: the code escapes to reach it
        escape = f"os = {OS}['sys'].modules['os']\nimport ctypes"
        code = code.replace("import ctypes, os", escape)
    result, text = attempt(code, worker_secrets, guarded=guarded)
    if guarded:
        assert result is None and text.startswith("sandbox:"), text
    else:
        assert result is not None, text
        assert len(result.output) == SYSCALL_ATTACKS.count("\ndef ") - 1  # all but _call
        for name, said in result.output.items():
            assert said.startswith("refused"), f"{name}: {said[:300]}"
    assert_no_secret(text)
    assert os.getpid() == worker_secrets["ppid"]  # alive


def test_no_packet_leaves_the_child(
    listener: Listener, server: FakeServer, worker_secrets: dict[str, Any]
) -> None:
    server.script("GET", "/", [Reply(200, {"secret": WORKER_SECRET})])
    data = {"tcp": listener.tcp_port, "udp": listener.udp_port, "http": server.url + "/"}
    result, text = attempt(NETWORK_ATTACKS + HARNESS, data)
    assert result is not None, text
    for name, said in result.output.items():
        assert said.startswith("refused"), f"{name}: {said[:300]}"
    assert listener.arrived == [] and server.requests == []
    assert_no_secret(text)


def test_the_network_attacks_meet_the_guards_first(listener: Listener) -> None:
    escape = f"socket = {OS}['sys'].modules['builtins'].__import__('socket')"
    code = NETWORK_ATTACKS.replace("import socket", escape)
    data = {"tcp": listener.tcp_port, "udp": listener.udp_port, "http": "http://127.0.0.1:9/"}
    result, text = attempt(code + HARNESS, data, guarded=True)
    assert result is None and "the network is off in function agents" in text
    assert listener.arrived == []


def test_disarming_the_guards_changes_nothing_the_kernel_holds(
    worker_secrets: dict[str, Any], listener: Listener
) -> None:
    """The code removes the audit hook's effect from inside (here: it never had one) and
    restores full builtins, then tries the file, process and network attacks at once."""
    code = f"""
def run(input, ctx):
    g = {OS}
    builtins = g["sys"].modules["builtins"]
    got = []
    for path in input["files"]:
        try:
            got.append(builtins.open(path, "rb").read(100))
        except OSError as exc:
            got.append(type(exc).__name__)
    sock = builtins.__import__("socket")
    try:
        sock.create_connection(("127.0.0.1", input["tcp"]), timeout=2)
        got.append("connected")
    except OSError as exc:
        got.append(type(exc).__name__)
    return [str(x) for x in got]
"""
    result, text = attempt(code, {**worker_secrets, "tcp": listener.tcp_port})
    assert result is not None, text
    assert set(result.output) <= {"PermissionError"}, result.output
    assert listener.arrived == []
    assert_no_secret(text)


def test_the_worker_survives_and_leaves_no_process(worker_secrets: dict[str, Any]) -> None:
    before = _children()
    code = SYSCALL_ATTACKS + "\nATTACKS = {'kill': kill_the_worker, 'fork': fork}\n"
    attempt(code + HARNESS, worker_secrets)
    assert os.getpid() == worker_secrets["ppid"]
    assert _children() == before, "a sandboxed process outlived its call"


def _children() -> list[str]:
    pid = os.getpid()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(proc.name)
    return sorted(found)


# x86_64 machine code: clone(CLONE_VM|FS|FILES|SIGHAND|THREAD) rdi times with no stack of its
# own (no memory counted under RLIMIT_AS), each new thread parked in ppoll; returns the last
# clone's result. A root worker's child is exempt from RLIMIT_NPROC, so only the filter bounds it.
THREAD_BOMB = (
    "4989f9b838000000bf000f010031f631d24531d20f054885c07408780549ffc975e1c3"
    "31ff31f631d24531d241b808000000b80f0100000f05ebe8"
)
THREAD_ATTACKS = f"""
import ctypes, mmap, os, threading
KEEP = []

def python_threads(input):
    threading.stack_size(32768)
    started = [threading.Thread(target=threading.Event().wait, daemon=True) for _ in range(50)]
    for thread in started:
        thread.start()
    return len(started)

def raw_clone_threads(input):
    if os.uname().machine != "x86_64":
        raise PermissionError("x86_64 only")
    page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(bytes.fromhex("{THREAD_BOMB}"))
    KEEP.append(page)
    address = ctypes.addressof(ctypes.c_char.from_buffer(page))
    last = ctypes.CFUNCTYPE(ctypes.c_long, ctypes.c_long)(address)(input["n"])
    if last < 0:
        raise PermissionError(f"clone: errno {{-last}}")
    return last

ATTACKS = {{n: f for n, f in dict(globals()).items() if callable(f) and not n.startswith("_")
           and getattr(f, "__module__", "") == __name__ and n != "run"}}
"""


def test_the_child_cannot_start_threads_to_exhaust_the_hosts_process_ids() -> None:
    """pid_max is often 32,768: a child of a root worker cloning threads without a stack would
    take every process id of the host (the worker, Dagster and Postgres could not fork)."""
    result, text = attempt(THREAD_ATTACKS + HARNESS, {"n": 200})
    assert result is not None, text
    assert set(result.output) == {"python_threads", "raw_clone_threads"}
    for name, said in result.output.items():
        assert said.startswith("refused"), f"{name}: {said[:300]}"
    assert_no_secret(text)
