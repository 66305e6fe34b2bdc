"""Reaching the zygote of an instance folder: start it when it is not there, ask it to fork.

Any process may be the first to launch a run (daemon, webserver, API, CLI), so whoever finds no
zygote starts one, detached, under a file lock so that two starters make one zygote. The zygote
outlives the process that started it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from baton.warm_launcher import protocol

log = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 60.0
REQUEST_TIMEOUT_SECONDS = 10.0

# This process's lease on each instance's zygote: (zygote pid, open connection).
_leases: dict[Path, tuple[int, socket.socket]] = {}
_leases_lock = threading.Lock()


class ZygoteUnavailable(Exception):
    """The zygote could not be reached or started; the caller falls back."""


def request(
    home: Path, message: Mapping[str, Any], timeout: float = REQUEST_TIMEOUT_SECONDS
) -> dict[str, Any]:
    """Send one message to the zygote of ``home``; its answer. OSError if none listens."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(protocol.socket_path(home)))
        protocol.send(sock, dict(message))
        answer = protocol.receive(sock)
    if not answer:
        raise ConnectionError("the zygote closed the connection without answering")
    return answer


def ping(home: Path) -> dict[str, Any] | None:
    """The zygote's ping answer, or None if none answers."""
    try:
        return request(home, {"op": "ping"}, timeout=2.0)
    except (OSError, ValueError):
        return None


@contextmanager
def _start_lock(home: Path) -> Iterator[None]:
    home.mkdir(parents=True, exist_ok=True)
    with open(protocol.lock_path(home), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_started(
    home: Path,
    preload: Sequence[str] | None = None,
    log_dir: Path | None = None,
    idle_exit_seconds: float | None = None,
) -> dict[str, Any]:
    """Ping the zygote of ``home``, starting it first if none answers."""
    answer = ping(home)
    if answer is not None:
        return answer
    with _start_lock(home):
        answer = ping(home)  # another process may have started it while we waited
        if answer is not None:
            return answer
        _spawn(home, preload, log_dir or home / "logs", idle_exit_seconds)
        answer = ping(home)
    if answer is None:
        raise ZygoteUnavailable("the zygote started but does not answer")
    return answer


def _spawn(
    home: Path, preload: Sequence[str] | None, log_dir: Path, idle_exit_seconds: float | None
) -> None:
    log_dir.mkdir(parents=True, exist_ok=True)
    # -P: the starter's working directory must not shadow modules on the zygote's sys.path.
    command = [sys.executable, "-P", "-m", "baton.warm_launcher.zygote", "--home", str(home)]
    if idle_exit_seconds is not None:
        command += ["--idle-exit-seconds", str(idle_exit_seconds)]
    if preload is not None:
        command += ["--preload", *preload]
    started = time.monotonic()
    with open(log_dir / "zygote.log", "ab") as out:
        # The started process exits as soon as its daemonized child listens; waiting for it
        # both tells us the zygote is ready and leaves no zombie in this process.
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            close_fds=True,
            cwd=os.getcwd(),
        )
        try:
            code = proc.wait(timeout=START_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired as exc:
            proc.kill()
            proc.wait()
            raise ZygoteUnavailable("the zygote did not start in time") from exc
    if code != 0:
        raise ZygoteUnavailable(f"the zygote exited with {code}; see {log_dir / 'zygote.log'}")
    log.info("started the run-worker zygote for %s in %.2f s", home, time.monotonic() - started)


def hold(
    home: Path,
    preload: Sequence[str] | None = None,
    log_dir: Path | None = None,
    idle_exit_seconds: float | None = None,
) -> dict[str, Any]:
    """Make sure the zygote of ``home`` runs and that this process holds a lease on it.

    The lease (an open connection) keeps the zygote up while this process lives; the OS
    closes it when the process ends, however it ends.
    """
    answer = ensure_started(home, preload, log_dir, idle_exit_seconds)
    pid = int(answer["pid"])
    with _leases_lock:
        held = _leases.get(home)
        if held is not None and held[0] == pid and not _closed(held[1]):
            return answer
        if held is not None:
            held[1].close()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(REQUEST_TIMEOUT_SECONDS)
            sock.connect(str(protocol.socket_path(home)))
            protocol.send(sock, {"op": "lease"})
            lease = protocol.receive(sock)
        except (OSError, ValueError):
            sock.close()
            raise
        _leases[home] = (int(lease.get("pid", pid)), sock)
    return answer


def _closed(sock: socket.socket) -> bool:
    # The zygote never writes on a lease; readable means it closed (exited).
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


def release(home: Path) -> None:
    """Let go of this process's lease on the zygote of ``home``."""
    with _leases_lock:
        held = _leases.pop(home, None)
    if held is not None:
        held[1].close()


def stop(home: Path) -> bool:
    """Ask the zygote of ``home`` to exit; False if none answered."""
    release(home)
    try:
        request(home, {"op": "shutdown"}, timeout=2.0)
    except (OSError, ValueError):
        return False
    return True


def fork_worker(
    home: Path,
    *,
    run_id: str,
    instance_ref: str,
    log_dir: Path,
    env: Mapping[str, str],
    cwd: str,
    preload: Sequence[str] | None = None,
    idle_exit_seconds: float | None = None,
) -> dict[str, Any]:
    """Have the zygote fork a run worker for ``run_id``; its ``{"pid", "start"}``.

    A zygote that finds its sources changed answers ``stale`` and exits; it is started afresh
    and asked once more.
    """
    message = {
        "op": "launch",
        "run_id": run_id,
        "instance_ref": instance_ref,
        "log_path": str(worker_log(log_dir, run_id)),
        "env": dict(env),
        "cwd": cwd,
    }
    for _attempt in range(3):
        hold(home, preload, log_dir, idle_exit_seconds)
        try:
            answer = request(home, message)
        except (OSError, ValueError) as exc:
            raise ZygoteUnavailable(f"the zygote did not answer a launch: {exc}") from exc
        if answer.get("ok"):
            return answer
        if not answer.get("stale"):
            raise ZygoteUnavailable(str(answer.get("error", "launch refused")))
        _wait_gone(home)
    raise ZygoteUnavailable("the zygote kept reporting stale sources")


def worker_log(log_dir: Path, run_id: str) -> Path:
    """Where the run worker of ``run_id`` writes its stdout and stderr."""
    return log_dir / "run-workers" / f"{run_id}.log"


def _wait_gone(home: Path, timeout: float = 5.0) -> None:
    # A stale zygote exits after answering; a new one must not find the old one still bound.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and ping(home) is not None:
        time.sleep(0.05)
