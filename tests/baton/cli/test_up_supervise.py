"""A real `baton up` supervises its children: kill -9 of the daemon is survived, a child that
crashes at once makes it exit non-zero, SIGTERM leaves no process behind."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from baton.warm_launcher import client as warm_client
from tests.e2e.deploy import free_port, wait_for_jobs

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
T = TypeVar("T")
BATON = str(Path(sys.executable).with_name("baton"))


def _wait(what: str, probe: Callable[[], T | None], timeout: float = 180) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _children_of(pid: int) -> dict[int, str]:
    """Live direct children of ``pid`` with their command lines (from /proc)."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found[int(entry.name)] = cmdline
    return found


def _descendants(pid: int) -> set[int]:
    out: set[int] = set()
    todo = [pid]
    while todo:
        for child in _children_of(todo.pop()):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _cmdlines(pids: set[int]) -> list[str]:
    alive = []
    for pid in sorted(p for p in pids if _alive(p)):
        with contextlib.suppress(OSError):
            alive.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:120])
    return [a.decode(errors="replace") for a in alive]


def _daemon_pid(up: subprocess.Popen[bytes]) -> int | None:
    return next((p for p, cmd in _children_of(up.pid).items() if "dagster-daemon" in cmd), None)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def ports(isolated_settings: Path) -> tuple[int, int]:
    return free_port(), free_port()


def _start(
    isolated_settings: Path, ports: tuple[int, int], **env: str
) -> tuple[subprocess.Popen[bytes], Path]:
    log = isolated_settings.parent / "baton-up.log"
    argv = [BATON, "up", "--port", str(ports[0]), "--api-port", str(ports[1])]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env}
        )
    return proc, log


@pytest.fixture
def stop_after() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:  # a failed test still stops its deployment
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)


def test_a_killed_daemon_is_restarted_and_sigterm_leaves_nothing_behind(
    isolated_settings: Path,
    ports: tuple[int, int],
    stop_after: list[subprocess.Popen[bytes]],
) -> None:
    # The API prewarms the warm launcher, so its detached zygote runs too.
    up, log = _start(isolated_settings, ports, BATON_API__PREWARM="true")
    stop_after.append(up)
    ui, api = f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}"
    wait_for_jobs(ui, up)
    _wait("the API", lambda: _answers(f"{api}/healthz"))
    home = Path(os.environ["DAGSTER_HOME"])
    zygote = _wait("the zygote", lambda: warm_client.ping(home))["pid"]

    first = _wait("the daemon", lambda: _daemon_pid(up))
    # What the killed daemon started (its code server) is orphaned, not a descendant any more.
    before = _descendants(up.pid)
    os.kill(first, signal.SIGKILL)
    _wait("the restart", lambda: b"daemon exited (-9); restarting" in log.read_bytes())
    assert _answers(f"{ui}/server_info") and _answers(f"{api}/healthz")
    second = _wait("a new daemon", lambda: (p := _daemon_pid(up)) != first and p)
    assert up.poll() is None
    assert _answers(f"{ui}/server_info") and _answers(f"{api}/healthz")
    # The new daemon gets as far as running its daemons, and stays up.
    started = b"Instance is configured with the following daemons"
    _wait("the new daemon to start", lambda: log.read_bytes().count(started) >= 2)
    assert _alive(second) and _daemon_pid(up) == second

    everything = before | _descendants(up.pid) | {zygote}
    up.send_signal(signal.SIGTERM)
    assert up.wait(90) == 0
    # Generous on a loaded machine (CI timed out at 30 s once); the message names survivors.
    try:
        _wait("every process to end", lambda: not any(_alive(p) for p in everything), timeout=90)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; still alive: {_cmdlines(everything)}") from None
    assert warm_client.ping(home) is None


def test_a_child_that_crashes_at_once_makes_baton_up_exit_non_zero(
    isolated_settings: Path,
    ports: tuple[int, int],
    stop_after: list[subprocess.Popen[bytes]],
) -> None:
    # The API's port is taken once `baton up` has checked it (a port taken before is refused
    # up front: test_up_ports.py) and before its API child binds (that child is started after
    # this line and imports for a second or more): every API child fails to bind at once.
    up, log = _start(isolated_settings, ports)
    stop_after.append(up)
    _wait("the startup lines", lambda: b"Baton: API on" in log.read_bytes(), timeout=120)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", ports[1]))
        taken.listen()
        code = up.wait(300)
    text = log.read_text()
    # uvicorn exits 3 when it cannot bind; `baton up` passes the crashing child's code on.
    assert code == 3, text
    assert "api exited (3); restarting in 1 s" in text
    assert "api exited (3); restarting in 2 s" in text
    assert "api exited (3) 5 times in 60 s; giving up and stopping all" in text
