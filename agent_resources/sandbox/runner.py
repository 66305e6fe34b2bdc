"""The child side of the function-agent sandbox: runs one agent's code, answers on a pipe.

Started by ``agent_resources.sandbox.process`` as ``python -I -B runner.py --result-fd N`` with
only the agent's declared variables in its environment and no descriptor but its pipes. It
reads one request frame from stdin, then, in this order:

1. ``_isolate.enter_namespaces``: its own user, network and PID namespace (it forks; the outer
   process only waits);
2. ``_isolate.harden``: undumpable, ``no_new_privs``, no capabilities, rlimits, stray fds shut;
3. ``_landlock.restrict``: reads beneath the standard library and site-packages only, no
   writes, no TCP, no signals out;
4. imports of the modules the code may use (under Landlock, so their import code is bound too);
5. ``_seccomp.install``: the system call allow-list, last;
6. the refusal if a required layer did not hold (unless the operator allowed weak sandboxes);
7. the agent's code, under the Python guards (``guards.py``: clear errors, not the boundary).

It writes one answer frame on the result fd; ``ctx.http`` calls are frames on the same pipes.
Standard library only (and this package's child modules).
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import io
import json
import os
import site
import sys
from collections.abc import Mapping
from typing import Any

if __name__ == "__main__":  # run by path: make this package importable without PYTHONPATH
    sys.path.append(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from agent_resources.sandbox import _isolate, _landlock, _seccomp, frames, layers
from agent_resources.sandbox.child_http import Http, channel
from agent_resources.sandbox.context import Budget, Context, Env
from agent_resources.sandbox.errors import (
    AgentFailure,
    OutputTooLarge,
    SandboxViolation,
)
from agent_resources.sandbox.guards import agent_builtins, arm, forget_denied_modules

LOG_CAP = 64_000
# Modules the agent's code may import by default (its entry may add more).
DEFAULT_MODULES = frozenset(
    {
        "base64", "binascii", "collections", "copy", "dataclasses", "datetime", "decimal",
        "enum", "fractions", "functools", "hashlib", "hmac", "itertools", "json", "math",
        "random", "re", "statistics", "string", "struct", "textwrap", "time", "typing",
        "urllib.parse", "uuid", "zlib",
    }
)  # fmt: skip


class CappedText(io.StringIO):
    """A stdout/stderr stand-in that keeps the first ``LOG_CAP`` characters."""

    def __init__(self) -> None:
        super().__init__()
        self.dropped = 0

    def write(self, text: str) -> int:
        room = LOG_CAP - self.tell()
        if room > 0:
            super().write(text[:room])
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)


def read_roots() -> tuple[str, ...]:
    """Where the agent's code may read: the standard library and site-packages.

    Not the other ``sys.path`` entries: a checkout installed in editable mode puts the project
    folder there, and the data folder may sit inside it.
    """
    roots = {os.path.dirname(os.__file__), *site.getsitepackages()}
    both = roots | {os.path.realpath(r) for r in roots}
    return tuple(sorted(r.rstrip("/") + "/" for r in both if r.startswith("/")))


def import_allowed(request: Mapping[str, Any]) -> frozenset[str]:
    """Import what the code may use (so it never needs to after the seccomp filter)."""
    allowed = DEFAULT_MODULES | frozenset(request.get("imports") or [])
    for module in sorted(allowed):
        with contextlib.suppress(ImportError):
            __import__(module)
    return allowed


def run_agent(
    request: Mapping[str, Any],
    allowed: frozenset[str],
    http: Http,
    violations: list[SandboxViolation],
    guarded: bool,
) -> dict[str, Any]:
    """Compile and run the agent's code; the answer as a JSON-able dict."""
    env = Env(_declared_values(request), list(request.get("env_names") or []), request["slug"])
    budget = Budget(int(request["limits"]["max_output_bytes"]))
    ctx = Context(request, env, budget, http)
    code = compile(request["code"], f"<agent {request['slug']}>", "exec")
    names = agent_builtins(allowed) if guarded else vars(builtins)
    namespace: dict[str, Any] = {"__builtins__": names, "__name__": "agent"}
    if guarded:
        forget_denied_modules()
        arm(read_roots(), violations)
    try:
        exec(code, namespace)
        entry = namespace.get(request.get("entrypoint") or "run")
        if not callable(entry):
            name = request.get("entrypoint")
            raise AgentFailure(f"the agent's code defines no function '{name}'", kind="config")
        output = entry(request.get("input"), ctx)
    except Exception as exc:
        # The next traceback entry is the agent's own code (frames themselves are refused).
        tb = exc.__traceback__.tb_next if exc.__traceback__ else None
        exc.add_note(f"line {tb.tb_lineno} of the agent's code" if tb else "")
        raise
    if violations:  # tried, caught its own error and carried on
        raise violations[0]
    body = json.dumps(output, default=str)
    budget.spend(len(body), "the output")
    return {
        "ok": True,
        "output": json.loads(body),
        "usage": ctx.usage,
        "assets": [
            {**a, "data": base64.b64encode(a["data"]).decode("ascii")} for a in ctx.assets.saved
        ],
        "deliverables": ctx.deliverables.created,
    }


def _declared_values(request: Mapping[str, Any]) -> dict[str, str]:
    names = set(request.get("env_names") or [])
    return {k: v for k, v in os.environ.items() if k in names}


def failure(kind: str, message: str, **extra: Any) -> dict[str, Any]:
    """An error answer."""
    return {"ok": False, "error": {"kind": kind, "message": message, **extra}}


def classify(
    exc: BaseException, request: Mapping[str, Any], violations: list[SandboxViolation]
) -> dict[str, Any]:
    """The error answer for an exception out of the agent's code."""
    limits = request["limits"]
    if violations:
        exc = violations[0]  # whatever it was wrapped in
    if isinstance(exc, AgentFailure):
        return failure(exc.kind, str(exc), retryable=exc.retryable, retry_after=exc.retry_after)
    if isinstance(exc, SandboxViolation):
        return failure("sandbox", f"sandbox: {exc}")
    if isinstance(exc, PermissionError):  # a kernel layer said no (EPERM, EACCES)
        return failure("sandbox", f"sandbox: refused by the kernel ({exc})")
    if isinstance(exc, MemoryError):
        return failure("limit", f"memory limit of {limits['memory_mb']} MB exceeded")
    if isinstance(exc, OutputTooLarge):
        return failure("limit", f"output limit of {limits['max_output_bytes']} bytes {exc}")
    if isinstance(exc, RecursionError):
        return failure("client", "recursion too deep in the agent's code")
    if isinstance(exc, SyntaxError):
        return failure("config", f"the agent's code does not compile: {exc}")
    where = " ".join(n for n in getattr(exc, "__notes__", []) if n)
    return failure("client", f"{type(exc).__name__}: {exc}" + (f" ({where})" if where else ""))


def confine(request: Mapping[str, Any], keep: tuple[int, ...]) -> tuple[dict[str, Any], Any]:
    """Steps 2-5 (the namespaces are entered before); which layers held, the allowed modules."""
    skip = frozenset(request["sandbox"]["unavailable"])
    report = _isolate.harden(request["limits"], keep)
    version = 0 if layers.LANDLOCK in skip else _landlock.restrict(read_roots())
    report[layers.LANDLOCK] = version > 0
    report["landlock_abi"] = version
    allowed = import_allowed(request)
    report[layers.SECCOMP] = layers.SECCOMP not in skip and _seccomp.install()
    return report, allowed


def main() -> None:
    """Run one request; ``os._exit`` at the end ends any thread the code left behind."""
    result_fd = int(sys.argv[sys.argv.index("--result-fd") + 1])
    request, _ = frames.read_frame(0)
    keep = (0, 1, 2, result_fd)
    skip = frozenset(request["sandbox"]["unavailable"])
    held: dict[str, Any] = dict(_isolate.enter_namespaces(skip, keep))
    send, receive = channel(0, result_fd)
    violations: list[SandboxViolation] = []
    timeout = float(request["limits"]["timeout_seconds"]) * 0.8
    http = Http(send, receive, timeout, violations)
    out, err = CappedText(), CappedText()
    try:
        report, allowed = confine(request, keep)
        held |= report
        absent = layers.missing(held)
        if absent and not request["sandbox"]["allow_weak"]:
            answer = failure("sandbox", f"sandbox: {layers.refusal(absent)}")
        else:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                guarded = bool(request["sandbox"]["guards"])
                answer = run_agent(request, allowed, http, violations, guarded)
    except BaseException as exc:  # everything the agent's code can raise becomes an answer
        answer = classify(exc, request, violations)
    answer["sandbox"] = held
    answer["log"] = (out.getvalue() + err.getvalue())[-LOG_CAP:]
    try:
        send({"t": "answer", **answer}, b"")
    except MemoryError:
        limit = request["limits"]["memory_mb"]
        send({"t": "answer", **failure("limit", f"memory limit of {limit} MB exceeded")}, b"")
    os._exit(0)


if __name__ == "__main__":
    main()
