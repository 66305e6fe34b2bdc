"""The child side of the function-agent sandbox: runs one agent's code, answers on a pipe.

Started by ``agent_resources.sandbox.process`` as ``python -I -B runner.py`` with an environment
holding only the agent's declared variables. It reads one JSON request from stdin, limits
itself (rlimits), imports what the agent may use, arms an audit hook, runs the agent's code, and
writes one JSON answer to the result pipe (``--result-fd``). The code's stdout and stderr are
captured (capped) and returned as its log.

Self-contained on purpose (the standard library and httpx only): the less this process imports,
the less the agent's code can reach. Layers, from the outside in: the parent's wall clock and
process-group kill; rlimits (CPU, address space, file size 0, open files, no core); an audit
hook refusing process creation, file writes, reads outside the Python installation, undeclared
network hosts and dangerous imports; a restricted ``__import__`` for the agent's own imports.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import resource
import signal
import socket
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

LOG_CAP = 64_000
SECCOMP_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_seccomp.py")
# Modules the agent's code may import by default (its entry may add more).
DEFAULT_MODULES = frozenset(
    {
        "base64",
        "binascii",
        "collections",
        "copy",
        "dataclasses",
        "datetime",
        "decimal",
        "enum",
        "fractions",
        "functools",
        "hashlib",
        "hmac",
        "httpx",
        "itertools",
        "json",
        "math",
        "random",
        "re",
        "statistics",
        "string",
        "struct",
        "textwrap",
        "time",
        "typing",
        "urllib.parse",
        "uuid",
        "zlib",
    }
)
# Never importable once armed, whatever the entry says: they reach processes or raw memory.
DENIED_MODULES = frozenset(
    {"_posixsubprocess", "subprocess", "ctypes", "_ctypes", "multiprocessing", "pty", "cffi"}
)
_WRITE_EVENTS = frozenset(
    {
        "os.remove",
        "os.rename",
        "os.mkdir",
        "os.rmdir",
        "os.symlink",
        "os.link",
        "os.chmod",
        "os.chown",
        "os.truncate",
        "os.utime",
        "os.chflags",
        "os.lchflags",
        "os.setxattr",
        "os.removexattr",
        "os.chdir",
        "shutil.rmtree",
        "shutil.copyfile",
        "shutil.move",
    }
)
_PROCESS_EVENTS = frozenset(
    {
        "os.fork",
        "os.forkpty",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "os.system",
        "os.startfile",
        "os.kill",
        "os.killpg",
        "subprocess.Popen",
        "pty.spawn",
        "ctypes.dlopen",
        "ctypes.dlsym",
        "ctypes.cdata",
        "sys.remote_exec",
    }
)


class SandboxViolation(PermissionError):
    """The agent's code tried something the sandbox refuses."""


class AgentFailure(Exception):
    """Raised by the agent's code (``ctx.fail``) or by ``ctx.check`` on an HTTP error."""

    def __init__(
        self,
        message: str,
        *,
        kind: str = "client",
        retryable: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable
        self.retry_after = retry_after


class OutputTooLarge(Exception):
    """The agent produced more bytes than its ``max_output_bytes``."""


# --- limits -------------------------------------------------------------------------------


def set_limits(limits: Mapping[str, Any]) -> None:
    """Apply rlimits to this process (inherited by nothing: it may not create processes)."""
    cpu = max(1, int(limits["cpu_seconds"] + 0.999))
    memory = int(limits["memory_mb"]) * 1024 * 1024
    _limit(resource.RLIMIT_CPU, cpu, cpu + 1)
    _limit(resource.RLIMIT_AS, memory, memory)
    _limit(resource.RLIMIT_FSIZE, 0, 0)
    _limit(resource.RLIMIT_CORE, 0, 0)
    _limit(resource.RLIMIT_NOFILE, 64, 64)
    _limit(resource.RLIMIT_NPROC, 0, 0)  # not enforced for root: the audit hook is the net
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past FSIZE fails instead of killing


def _limit(which: int, soft: int, hard: int) -> None:
    _current_soft, current_hard = resource.getrlimit(which)
    if current_hard != resource.RLIM_INFINITY:
        hard = min(hard, current_hard)
        soft = min(soft, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(which, (soft, hard))


# --- the audit hook -----------------------------------------------------------------------


_SOCKET_FAMILIES = frozenset({socket.AF_INET, socket.AF_INET6})
_SOCKET_TYPES = frozenset({socket.SOCK_STREAM, socket.SOCK_DGRAM})
# Reaching the interpreter's objects behind the code's back (and so the hook's own state).
_INTROSPECTION_EVENTS = frozenset(
    {"gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys._current_frames"}
)


def arm(
    read_roots: tuple[str, ...], hosts: frozenset[str], violations: list[SandboxViolation]
) -> None:
    """Add the audit hook; from here on it decides every audited action, for good.

    Everything the hook uses is bound here, in its closure, rather than looked up in a module
    or class the agent's code could patch; it keeps no reference the code can reach. Each
    refusal is also appended to ``violations``, so one the code catches still fails the call.
    """
    error, is_instance, text, integer, represent = SandboxViolation, isinstance, str, int, repr
    fsdecode = os.fsdecode
    simple = {e: "creating processes is not allowed" for e in _PROCESS_EVENTS}
    simple |= {e: "changing files is not allowed" for e in _WRITE_EVENTS}
    simple |= {e: "introspecting the interpreter is not allowed" for e in _INTROSPECTION_EVENTS}
    denied, families, types = DENIED_MODULES, _SOCKET_FAMILIES, _SOCKET_TYPES
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    write_modes = frozenset("wax+")

    def on_open(path: Any, mode: Any, flags: Any) -> str | None:
        writing = is_instance(mode, text) and not write_modes.isdisjoint(mode)
        if writing or (is_instance(flags, integer) and flags & write_flags):
            return f"writing files is not allowed ({path!r})"
        if is_instance(path, integer):
            return None
        name = fsdecode(path)
        if "/../" in name or name.endswith("/..") or not name.startswith(read_roots):
            return f"reading files outside the Python installation ({name!r})"
        return None

    def on_host(host: Any) -> str | None:
        if is_instance(host, tuple):
            host = host[0]
        name = text(host) if is_instance(host, text) else represent(host)
        return None if name in hosts else f"network access to host '{name}' is not allowed"

    def refusal(event: str, args: tuple[Any, ...]) -> str | None:
        if event in simple:
            return f"{simple[event]} ({event})"
        if event == "object.__getattr__" and args[1] == "tb_frame":
            return "introspecting the interpreter is not allowed (frames)"
        if event == "open":
            return on_open(*(*args, None, None, None)[:3])
        if event == "import" and text(args[0]).partition(".")[0] in denied:
            return f"import of '{args[0]}' is not allowed"
        if event == "socket.__new__" and (args[1] not in families or args[2] & 0xF not in types):
            return "sockets other than TCP or UDP over IP are not allowed"
        if event == "socket.getaddrinfo":
            return on_host(args[0])
        if event in ("socket.connect", "socket.sendto", "socket.bind"):
            return on_host(args[1])
        return None

    def hook(event: str, args: tuple[Any, ...]) -> None:
        message = refusal(event, args)
        if message is not None:
            violation = error(message)
            violations.append(violation)
            raise violation

    sys.addaudithook(hook)


def resolve(hosts: set[str]) -> set[str]:
    """The addresses the allowed hosts resolve to now, before the hook is armed."""
    addresses = set()
    for host in hosts:
        with contextlib.suppress(OSError, UnicodeError):
            for info in socket.getaddrinfo(host, None):
                addresses.add(str(info[4][0]))
    return addresses


def read_roots() -> tuple[str, ...]:
    """Where the agent's code may read: the Python installation and the CA bundles.

    Both each folder as given and its real path, each ending in ``/``, so the hook can compare
    strings without calling into modules the agent's code could patch.
    """
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.__file__)}
    roots.update(p for p in sys.path if p and os.path.isdir(p))
    roots.update({"/etc/ssl", "/usr/lib/ssl", "/usr/share/ca-certificates"})
    both = roots | {os.path.realpath(r) for r in roots}
    return tuple(sorted(r.rstrip("/") + "/" for r in both if r.startswith("/")))


# --- what the agent's code sees -----------------------------------------------------------


class Budget:
    """Counts the bytes the agent hands back, against ``max_output_bytes``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def spend(self, size: int, what: str) -> None:
        self.used += size
        if self.used > self.limit:
            raise OutputTooLarge(f"exceeded by {what} ({self.used} bytes in all)")


class Env(Mapping[str, str]):
    """The declared variables that are set; asking for anything else names the rule."""

    def __init__(self, values: Mapping[str, str], declared: list[str], slug: str) -> None:
        self._values = dict(values)
        self._declared = declared
        self._slug = slug

    def __getitem__(self, name: str) -> str:
        if name not in self._declared:
            raise SandboxViolation(
                f"env var '{name}' is not declared by agent '{self._slug}' "
                f"(declared: {', '.join(self._declared) or 'none'})"
            )
        return self._values[name]

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        try:
            return self[name]
        except KeyError:
            return default

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


class Assets:
    """``ctx.assets``: bytes kept in Baton's asset store by the parent, never written here."""

    def __init__(self, budget: Budget) -> None:
        self.saved: list[dict[str, Any]] = []
        self._budget = budget

    def save_bytes(
        self, name: str, data: bytes, *, mime_type: str = "application/octet-stream"
    ) -> dict[str, Any]:
        """Keep ``data`` as an asset; returns a reference to pass to ``deliverables.create``."""
        if not isinstance(data, bytes | bytearray):
            raise TypeError("save_bytes takes bytes")
        self._budget.spend(len(data), f"asset '{name}'")
        ref = {"asset": len(self.saved), "name": str(name), "size_bytes": len(data)}
        ref["sha256"] = hashlib.sha256(data).hexdigest()
        self.saved.append({**ref, "mime_type": mime_type, "data": bytes(data)})
        return ref


class Deliverables:
    """``ctx.deliverables``: things this step produced for people."""

    def __init__(self, assets: Assets, budget: Budget) -> None:
        self.created: list[dict[str, Any]] = []
        self._assets = assets
        self._budget = budget

    def create(
        self,
        type: str,
        *,
        name: str = "result",
        content: Any = None,
        asset: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a deliverable: ``content`` (JSON-able) and/or an ``asset`` from save_bytes."""
        item = {"type": str(type), "name": str(name), "content": content}
        item["metadata"] = dict(metadata or {})
        if asset is not None:
            index = int(asset["asset"])
            if not 0 <= index < len(self._assets.saved):
                raise ValueError("asset must be a reference returned by ctx.assets.save_bytes")
            item["asset"] = index
        self._budget.spend(len(json.dumps(item, default=str)), f"deliverable '{name}'")
        self.created.append(item)


class Context:
    """The ``ctx`` the agent's ``run(input, ctx)`` receives."""

    Failure = AgentFailure

    def __init__(self, request: Mapping[str, Any], env: Env, budget: Budget) -> None:
        self.run_id: str = request["run_id"]
        self.step_id: str = request["step_id"]
        self.attempt: int = request["attempt"]
        self.idempotency_key = f"{self.run_id}:{self.step_id}:{self.attempt}"
        self.env = env
        self.config: dict[str, Any] = dict(request.get("params") or {})
        # For the code's own HTTP timeouts: short of the wall clock, so a slow server is a
        # (retryable) timeout rather than a killed process.
        self.timeout_seconds: float = float(request["limits"]["timeout_seconds"]) * 0.8
        self.assets = Assets(budget)
        self.deliverables = Deliverables(self.assets, budget)
        self.usage: dict[str, Any] = {}

    def placeholder_png(self, text: str, size: int = 256) -> bytes:
        """A deterministic gradient PNG coloured by ``text``: the offline stand-in for images."""
        return placeholder_png(text, size)

    def log(self, message: str) -> None:
        """A line in the step's log."""
        sys.stderr.write(f"{message}\n")

    def fail(
        self,
        message: str,
        *,
        retryable: bool = False,
        kind: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Fail the step; ``retryable`` lets its retry policy try again."""
        raise AgentFailure(
            message,
            kind=kind or ("server" if retryable else "client"),
            retryable=retryable,
            retry_after=retry_after,
        )

    def check(self, response: Any) -> Any:
        """Fail like Baton's HTTP agents on a non-2xx answer (429/5xx retryable, 4xx not)."""
        code = int(response.status_code)
        if code < 400:
            return response
        what = f"{response.request.method} {response.request.url} answered {code}"
        after = _retry_after(response.headers.get("retry-after"))
        excerpt = " ".join(response.text.split())[:200]
        if code == 429:
            raise AgentFailure(f"{what} (rate limited)", kind="rate_limited", retry_after=after)
        if code >= 500 or code == 408:
            kind = "server" if code >= 500 else "timeout"
            raise AgentFailure(f"{what}: {excerpt}", kind=kind, retry_after=after)
        raise AgentFailure(f"{what}: {excerpt}", kind="client")

    def json(self, response: Any) -> Any:
        """The JSON body of a checked response; a malformed body is a ``bad_response``."""
        self.check(response)
        try:
            return response.json()
        except ValueError as exc:
            what = f"{response.request.method} {response.request.url}"
            raise AgentFailure(
                f"{what} answered malformed JSON: {exc}", kind="bad_response"
            ) from exc


def placeholder_png(text: str, size: int = 256) -> bytes:
    """A ``size`` x ``size`` RGB PNG whose colours come from a hash of ``text``."""
    import struct
    import zlib

    size = max(8, min(int(size), 1024))
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    (r0, g0, b0), (r1, g1, b1) = digest[0:3], digest[3:6]
    rows = bytearray()
    for y in range(size):
        rows.append(0)  # filter: none
        for x in range(size):
            t = (x + y) / (2 * size - 2)
            rows += bytes(round(a + (b - a) * t) for a, b in ((r0, r1), (g0, g1), (b0, b1)))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 6))
        + chunk(b"IEND", b"")
    )


def _retry_after(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value else None
    except ValueError:
        return None


def restricted_import(allowed: frozenset[str]) -> Callable[..., Any]:
    """An ``__import__`` for the agent's code that only admits ``allowed`` modules."""
    real_import = __import__

    def guarded(
        name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0
    ) -> Any:
        if level != 0 or not _admitted(name, allowed):
            raise SandboxViolation(
                f"import of '{name}' is not allowed in function agents "
                f"(allowed: {', '.join(sorted(allowed))})"
            )
        return real_import(name, globals, locals, fromlist, level)

    return guarded


def _admitted(name: str, allowed: frozenset[str]) -> bool:
    parts = name.split(".")
    return any(".".join(parts[:i]) in allowed for i in range(1, len(parts) + 1))


def agent_builtins(allowed: frozenset[str]) -> dict[str, Any]:
    """Python's builtins minus the ways out, with the guarded import."""
    import builtins

    names = dict(vars(builtins))
    for name in ("open", "input", "breakpoint", "exit", "quit", "help", "copyright", "credits"):
        names.pop(name, None)
    names["__import__"] = restricted_import(allowed)
    return names


# --- running ------------------------------------------------------------------------------


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


def run_agent(request: Mapping[str, Any], plan: Plan) -> dict[str, Any]:
    """Compile and run the agent's code under the hook; the answer as a JSON-able dict."""
    allowed = DEFAULT_MODULES | frozenset(request.get("imports") or [])
    env = Env(_declared_values(request), list(request.get("env_names") or []), request["slug"])
    budget = Budget(int(request["limits"]["max_output_bytes"]))
    ctx = Context(request, env, budget)
    code = compile(request["code"], f"<agent {request['slug']}>", "exec")
    namespace: dict[str, Any] = {"__builtins__": agent_builtins(allowed), "__name__": "agent"}
    arm(plan.read_roots, plan.hosts, plan.violations)
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
    if plan.violations:  # tried, caught its own error and carried on
        raise plan.violations[0]
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
        "seccomp": plan.seccomp,
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
        exc = violations[0]  # whatever it was wrapped in (httpx wraps a refused connect)
    if isinstance(exc, AgentFailure):
        return failure(exc.kind, str(exc), retryable=exc.retryable, retry_after=exc.retry_after)
    if isinstance(exc, SandboxViolation):
        return failure("sandbox", f"sandbox: {exc}")
    if isinstance(exc, MemoryError):
        return failure("limit", f"memory limit of {limits['memory_mb']} MB exceeded")
    if isinstance(exc, OutputTooLarge):
        return failure("limit", f"output limit of {limits['max_output_bytes']} bytes {exc}")
    if isinstance(exc, RecursionError):
        return failure("client", "recursion too deep in the agent's code")
    if isinstance(exc, SyntaxError):
        return failure("config", f"the agent's code does not compile: {exc}")
    if exc.__class__.__module__.startswith("httpx"):
        kind = "timeout" if "Timeout" in type(exc).__name__ else "server"
        return failure(kind, f"HTTP call failed: {type(exc).__name__}: {exc}")
    where = " ".join(n for n in getattr(exc, "__notes__", []) if n)
    return failure("client", f"{type(exc).__name__}: {exc}" + (f" ({where})" if where else ""))


@dataclass
class Plan:
    """What ``prepare`` settled before the agent's code runs."""

    read_roots: tuple[str, ...]
    hosts: frozenset[str]
    seccomp: bool
    violations: list[SandboxViolation] = field(default_factory=list)


def prepare(request: Mapping[str, Any]) -> Plan:
    """Limits, the imports the code may use, the allowed addresses, the seccomp filter."""
    set_limits(request["limits"])
    for module in sorted(DEFAULT_MODULES | frozenset(request.get("imports") or [])):
        with contextlib.suppress(ImportError):
            __import__(module)
    import httpx

    httpx.Client().close()  # loads the TLS and transport modules before the hook is armed
    hosts = set(request.get("hosts") or [])
    return Plan(read_roots(), frozenset(hosts | resolve(hosts)), install_seccomp())


def install_seccomp() -> bool:
    """The kernel-side net (``_seccomp``); ctypes is dropped again so the code finds none."""
    import importlib.util

    # Loaded by path: ``python -I`` leaves the script's folder off sys.path.
    spec = importlib.util.spec_from_file_location("_seccomp", SECCOMP_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        return bool(module.install())
    except OSError:
        return False
    finally:
        dropped = [n for n in sys.modules if n.split(".")[0] in DENIED_MODULES | {"_seccomp"}]
        for name in dropped:
            del sys.modules[name]


def main() -> None:
    """Run one request; the hook stays armed to the end, so ``os._exit`` ends everything."""
    result_file = os.fdopen(int(sys.argv[sys.argv.index("--result-fd") + 1]), "w")
    request = json.loads(sys.stdin.read())
    out, err = CappedText(), CappedText()
    plan: Plan | None = None
    try:
        plan = prepare(request)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            answer = run_agent(request, plan)
    except BaseException as exc:  # everything the agent's code can raise becomes an answer
        answer = classify(exc, request, plan.violations if plan else [])
    answer["log"] = (out.getvalue() + err.getvalue())[-LOG_CAP:]
    try:
        text = json.dumps(answer, default=str)
    except MemoryError:
        text = json.dumps(failure("limit", f"memory limit of {request['limits']['memory_mb']} MB"))
    result_file.write(text)
    result_file.flush()
    os._exit(0)  # threads the agent's code may have left behind end here too


if __name__ == "__main__":
    main()
