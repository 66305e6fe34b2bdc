"""The parent side of the function-agent sandbox: one child process per call, watched.

The child (``runner.py``) limits itself; this side owns what the child cannot be trusted with:
the wall clock (the whole process group is killed), caps on every byte read back, and turning
how the child ended into an error that names the limit it hit.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUNNER = Path(__file__).resolve().parent / "runner.py"
STREAM_CAP = 64_000
# The answer carries assets base64-encoded (4/3) plus JSON framing and the log.
_ANSWER_OVERHEAD = 256_000


class SandboxError(Exception):
    """The child ended without a usable answer; ``kind`` is ``limit`` or ``sandbox``."""

    def __init__(self, message: str, kind: str = "limit") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Limits:
    """What one call may use."""

    timeout_seconds: float
    cpu_seconds: float
    memory_mb: int
    max_output_bytes: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "timeout_seconds": self.timeout_seconds,
            "cpu_seconds": self.cpu_seconds,
            "memory_mb": self.memory_mb,
            "max_output_bytes": self.max_output_bytes,
        }


@dataclass
class _Streams:
    answer: bytearray
    stdout: bytearray
    stderr: bytearray
    overflow: str | None = None


def run_in_sandbox(
    payload: Mapping[str, Any], *, env: Mapping[str, str], limits: Limits
) -> dict[str, Any]:
    """Run the agent code described by ``payload`` in a fresh limited process.

    Args:
        payload: The runner's request (code, input, env names, hosts, ...); limits are added.
        env: The only environment the child gets (the agent's declared variables).
        limits: Wall clock, CPU, memory and output caps.

    Returns:
        The runner's answer: ``{"ok": True, "output", ...}`` or ``{"ok": False, "error"}``.

    Raises:
        SandboxError: the child was killed or crashed; the message names the limit.
    """
    read_fd, write_fd = os.pipe()
    request = json.dumps({**payload, "limits": limits.as_dict()}).encode()
    with tempfile.TemporaryDirectory(prefix="baton-fn-") as workdir:
        os.chmod(workdir, 0o500)  # nothing to write there either
        try:
            child = subprocess.Popen(
                [sys.executable, "-I", "-B", str(RUNNER), "--result-fd", str(write_fd)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(write_fd,),
                env={"LANG": "C.UTF-8", **env},
                cwd=workdir,
                start_new_session=True,  # its own process group, killed as one
            )
        finally:
            os.close(write_fd)
        try:
            streams, timed_out = _collect(child, read_fd, request, limits)
        finally:
            _kill_group(child)
            os.close(read_fd)
    return _answer(child.returncode, streams, timed_out, limits)


def _collect(
    child: subprocess.Popen[bytes], read_fd: int, request: bytes, limits: Limits
) -> tuple[_Streams, bool]:
    assert child.stdin and child.stdout and child.stderr
    writer = threading.Thread(target=_feed, args=(child.stdin, request), daemon=True)
    writer.start()
    caps = {"answer": limits.max_output_bytes * 4 // 3 + _ANSWER_OVERHEAD}
    streams = _Streams(bytearray(), bytearray(), bytearray())
    buffers = {read_fd: "answer", child.stdout.fileno(): "stdout", child.stderr.fileno(): "stderr"}
    deadline = time.monotonic() + limits.timeout_seconds
    with selectors.DefaultSelector() as selector:
        for fd in buffers:
            selector.register(fd, selectors.EVENT_READ)
        while buffers:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return streams, True
            for key, _ in selector.select(timeout=min(remaining, 0.5)):
                fd = int(key.fd)
                chunk = os.read(fd, 65536)
                if not chunk:
                    selector.unregister(fd)
                    del buffers[fd]
                    continue
                name = buffers[fd]
                target: bytearray = getattr(streams, name)
                target.extend(chunk)
                if len(target) > caps.get(name, STREAM_CAP):
                    streams.overflow = name
                    return streams, False
    _wait(child, deadline)
    return streams, child.returncode is None


def _feed(stream: Any, data: bytes) -> None:
    try:
        stream.write(data)
        stream.close()
    except OSError:  # the child died before reading it all; its end is reported elsewhere
        pass


def _wait(child: subprocess.Popen[bytes], deadline: float) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(timeout=max(deadline - time.monotonic(), 0.1))


def _kill_group(child: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    for stream in (child.stdin, child.stdout, child.stderr):
        if stream is not None:
            stream.close()


def _answer(code: int | None, streams: _Streams, timed_out: bool, limits: Limits) -> dict[str, Any]:
    if timed_out:
        raise SandboxError(f"wall-clock limit of {limits.timeout_seconds:g} s exceeded")
    if streams.overflow == "answer":
        raise SandboxError(f"output limit of {limits.max_output_bytes} bytes exceeded")
    if streams.overflow:
        raise SandboxError(
            f"output limit: more than {STREAM_CAP} bytes written to {streams.overflow}"
        )
    if streams.answer:
        try:
            answer: dict[str, Any] = json.loads(streams.answer)
            return answer
        except ValueError:
            pass
    raise SandboxError(_death(code, streams, limits))


def _death(code: int | None, streams: _Streams, limits: Limits) -> str:
    if code == -signal.SIGXCPU or code == -signal.SIGKILL:
        # SIGXCPU at the soft CPU limit, SIGKILL at the hard one (we kill only on timeouts).
        return f"CPU time limit of {limits.cpu_seconds:g} s exceeded"
    if code in (-signal.SIGSEGV, -signal.SIGABRT, -signal.SIGBUS):
        return f"the agent process crashed (signal {-code}); memory limit is {limits.memory_mb} MB"
    tail = bytes(streams.stderr[-500:]).decode("utf-8", "replace").strip()
    if "MemoryError" in tail:
        return f"memory limit of {limits.memory_mb} MB exceeded"
    return f"the agent process ended without an answer (exit {code}): {tail}"
