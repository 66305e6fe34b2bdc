"""The parent side of the function-agent sandbox: one child process per call, watched.

The child (``runner.py``) confines itself with kernel layers; this side owns what the child
cannot be trusted with: a clean start (only the declared env, no descriptor but its pipes, its
own session), the wall clock (the whole process group is killed), the HTTP broker
(``broker.py``) answering the child's ``ctx.http`` frames, caps on every byte read back, and
turning how the child ended into an error that names the limit it hit.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_resources.cancel import Cancellation
from agent_resources.sandbox import frames
from agent_resources.sandbox.broker import Broker, BrokerLimits
from agent_resources.sandbox.layers import SandboxPolicy

RUNNER = Path(__file__).resolve().parent / "runner.py"
STREAM_CAP = 64_000
# The answer carries assets base64-encoded (4/3) plus JSON framing and the log.
_ANSWER_OVERHEAD = 256_000
_PR_SET_DUMPABLE = 4


class SandboxError(Exception):
    """The child ended without a usable answer; ``kind`` is ``limit``, ``sandbox`` or
    ``timeout`` (the call was cancelled)."""

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


def run_in_sandbox(
    payload: Mapping[str, Any],
    *,
    env: Mapping[str, str],
    limits: Limits,
    hosts: Iterable[str] = (),
    policy: SandboxPolicy | None = None,
    guards: bool = True,
    cancellation: Cancellation | None = None,
) -> dict[str, Any]:
    """Run the agent code described by ``payload`` in a fresh confined process.

    Args:
        payload: The runner's request (code, input, env names, ...); limits are added.
        env: The only environment the child gets (the agent's declared variables).
        limits: Wall clock, CPU, memory and output caps.
        hosts: The hosts ``ctx.http`` may call.
        policy: Whether a sandbox missing a kernel layer may run (and layers to treat as
            missing); the default refuses.
        guards: The Python-level guards (clear errors); off only in tests that prove the
            kernel layers hold on their own.
        cancellation: Once set, the child's process group is killed at once (a step's
            timeout or an aborted run), so no retry overlaps it.

    Returns:
        The runner's answer: ``{"ok": True, "output", ...}`` or ``{"ok": False, "error"}``,
        with ``sandbox`` saying which layers held.

    Raises:
        SandboxError: the child was killed or crashed; the message names the limit.
    """
    make_worker_undumpable()
    policy = policy or SandboxPolicy()
    deadline = time.monotonic() + limits.timeout_seconds
    broker = Broker(hosts, BrokerLimits.for_output(limits.max_output_bytes), deadline)
    sandbox = {**policy.as_dict(), "guards": guards}
    request = {**payload, "limits": limits.as_dict(), "sandbox": sandbox}
    read_fd, write_fd = os.pipe()
    with tempfile.TemporaryDirectory(prefix="baton-fn-") as workdir:
        os.chmod(workdir, 0o500)  # nothing to write there either
        try:
            child = _spawn(write_fd, env, workdir)
        finally:
            os.close(write_fd)
        session = _Session(child, read_fd, broker, limits, deadline)
        if cancellation is not None:
            cancellation.on_cancel(lambda: session.cancel())
        try:
            session.run(frames.encode(request))
        finally:
            session.stop()
            _kill_group(child)
            os.close(read_fd)
    return session.result(child.returncode)


def make_worker_undumpable() -> None:
    """The worker itself: no process of its uid may ptrace it or read its /proc files.

    Core dumps of the worker go too; a debugger must attach as root. Dagster is not affected
    (its subprocesses exec, which makes them dumpable again).
    """
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)


def _spawn(write_fd: int, env: Mapping[str, str], workdir: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-I", "-B", str(RUNNER), "--result-fd", str(write_fd)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        close_fds=True,  # nothing of the worker's but the result pipe
        pass_fds=(write_fd,),
        env={"LANG": "C.UTF-8", **env},
        cwd=workdir,
        start_new_session=True,  # its own process group, killed as one
    )


class _Session:
    """One child's pipes: the request and HTTP answers out, frames and logs in, by deadline."""

    def __init__(
        self,
        child: subprocess.Popen[bytes],
        read_fd: int,
        broker: Broker,
        limits: Limits,
        deadline: float,
    ) -> None:
        assert child.stdin and child.stdout and child.stderr
        self.child, self.limits, self.deadline = child, limits, deadline
        self.answer: dict[str, Any] | None = None
        self.logs = {"stdout": bytearray(), "stderr": bytearray()}
        self.overflow: str | None = None
        self.timed_out = False
        self.cancelled = False
        self.malformed: str | None = None
        answer_cap = limits.max_output_bytes * 4 // 3 + _ANSWER_OVERHEAD
        self._reader = frames.FrameReader(answer_cap, broker.limits.max_request_bytes)
        self._outbox = bytearray()
        self._stdin = child.stdin.fileno()
        os.set_blocking(self._stdin, False)
        self._reads = {read_fd: "answer", child.stdout.fileno(): "stdout"}
        self._reads[child.stderr.fileno()] = "stderr"
        self._broker = _BrokerThread(broker)

    def run(self, request: bytes) -> None:
        self._outbox += request
        with selectors.DefaultSelector() as selector:
            for fd in self._reads:
                selector.register(fd, selectors.EVENT_READ)
            selector.register(self._broker.wake, selectors.EVENT_READ)
            while self._reads and not (self.overflow or self.malformed):
                remaining = self.deadline - time.monotonic()
                if remaining <= 0:
                    self.timed_out = True
                    return
                self._want_write(selector)
                for key, _ in selector.select(timeout=min(remaining, 0.5)):
                    self._ready(int(key.fd), selector)
        if self.overflow or self.malformed:
            return  # killed as it is; what it sent says why
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.child.wait(timeout=max(self.deadline - time.monotonic(), 0.1))
        self.timed_out = self.child.returncode is None

    def _want_write(self, selector: selectors.BaseSelector) -> None:
        registered = self._stdin in selector.get_map()
        if self._outbox and self._stdin >= 0 and not registered:
            selector.register(self._stdin, selectors.EVENT_WRITE)
        elif registered and not self._outbox:
            selector.unregister(self._stdin)

    def _ready(self, fd: int, selector: selectors.BaseSelector) -> None:
        if fd == self._stdin:
            self._write(selector)
        elif fd == self._broker.wake:
            self._outbox += self._broker.answers()
        elif fd in self._reads:
            chunk = os.read(fd, 65536)
            if not chunk:
                selector.unregister(fd)
                del self._reads[fd]
            elif self._reads[fd] == "answer":
                self._frames(chunk)
            else:
                self._log(self._reads[fd], chunk)

    def _write(self, selector: selectors.BaseSelector) -> None:
        try:
            written = os.write(self._stdin, self._outbox[:65536])
        except BlockingIOError:
            return
        except (BrokenPipeError, OSError):  # the child is gone; how it ended says why
            selector.unregister(self._stdin)
            self._stdin, self._outbox = -1, bytearray()
            return
        del self._outbox[:written]

    def _frames(self, chunk: bytes) -> None:
        try:
            for meta, body in self._reader.feed(chunk):
                if meta.get("t") == "http":
                    self._broker.submit(meta, body)
                elif meta.get("t") == "answer":
                    self.answer = meta
        except frames.FrameTooLarge:
            self.overflow = "answer"
        except ValueError as exc:
            self.malformed = str(exc)

    def _log(self, name: str, chunk: bytes) -> None:
        target = self.logs[name]
        target.extend(chunk)
        if len(target) > STREAM_CAP:
            self.overflow = name

    def stop(self) -> None:
        self._broker.stop()

    def cancel(self) -> None:
        """Kill the child now: its call was cancelled (a timeout, or its run aborted)."""
        self.cancelled = True
        _kill_if_running(self.child)

    def result(self, code: int | None) -> dict[str, Any]:
        """The child's answer, or the SandboxError saying why there is none."""
        if self.cancelled:
            raise SandboxError("the call was cancelled and its process killed", kind="timeout")
        if self.timed_out:
            raise SandboxError(f"wall-clock limit of {self.limits.timeout_seconds:g} s exceeded")
        if self.overflow == "answer":
            raise SandboxError(f"output limit of {self.limits.max_output_bytes} bytes exceeded")
        if self.overflow:
            raise SandboxError(
                f"output limit: more than {STREAM_CAP} bytes written to {self.overflow}"
            )
        if self.answer is not None:
            return {k: v for k, v in self.answer.items() if k != "t"}
        raise SandboxError(self._death(code), kind="sandbox" if self.malformed else "limit")

    def _death(self, code: int | None) -> str:
        limits = self.limits
        if self.malformed:
            return f"the agent process sent a malformed frame ({self.malformed})"
        if code == -signal.SIGXCPU or code == -signal.SIGKILL:
            # The kernel's SIGKILL at the CPU limit (we kill only on timeouts).
            return f"CPU time limit of {limits.cpu_seconds:g} s exceeded"
        if code in (-signal.SIGSEGV, -signal.SIGABRT, -signal.SIGBUS):
            crash = f"the agent process crashed (signal {-code})"
            return f"{crash}; memory limit is {limits.memory_mb} MB"
        tail = bytes(self.logs["stderr"][-500:]).decode("utf-8", "replace").strip()
        if "MemoryError" in tail:
            return f"memory limit of {limits.memory_mb} MB exceeded"
        return f"the agent process ended without an answer (exit {code}): {tail}"


class _BrokerThread:
    """Makes the child's HTTP calls one at a time off the select loop, so the wall clock and
    the log caps keep being watched while a call is out; ``wake`` is readable when one is done.
    """

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._todo: queue.Queue[tuple[dict[str, Any], bytes] | None] = queue.Queue()
        self._done: queue.Queue[bytes] = queue.Queue()
        self.wake, self._wake_w = os.pipe()
        os.set_blocking(self.wake, False)
        self._thread = threading.Thread(target=self._serve, daemon=True, name="baton-fn-http")
        self._thread.start()

    def submit(self, meta: dict[str, Any], body: bytes) -> None:
        self._todo.put((meta, body))

    def answers(self) -> bytes:
        with contextlib.suppress(BlockingIOError):
            os.read(self.wake, 4096)
        out = bytearray()
        while not self._done.empty():
            out += self._done.get_nowait()
        return bytes(out)

    def stop(self) -> None:
        """Let the thread end after the call it is making (bounded by the step's deadline)."""
        self._todo.put(None)
        os.close(self.wake)

    def _serve(self) -> None:
        try:
            while (item := self._todo.get()) is not None:
                meta, body = self._broker.handle(*item)
                self._done.put(frames.encode(meta, body))
                with contextlib.suppress(OSError):
                    os.write(self._wake_w, b"!")
        finally:
            self._broker.close()
            os.close(self._wake_w)


def _kill_if_running(child: subprocess.Popen[bytes]) -> None:
    # Not yet reaped, so its pid (and process group) cannot belong to another process.
    if child.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)


def _kill_group(child: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    for stream in (child.stdin, child.stdout, child.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
