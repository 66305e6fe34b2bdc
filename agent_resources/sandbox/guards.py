"""Python-level guards in the sandbox child: clear errors, never the boundary.

The kernel layers (namespaces, Landlock, seccomp) refuse the same things whatever the code does
to this interpreter; these run first so that an ordinary mistake reads as a sentence rather
than ``[Errno 1] Operation not permitted``, and a refusal the code catches still fails the call.
Code that disarms them (it shares the interpreter) meets the kernel instead.

Standard library only.
"""

from __future__ import annotations

import builtins
import os
import sys
from collections.abc import Callable
from typing import Any

from agent_resources.sandbox.errors import SandboxViolation

# Never importable once armed, whatever the entry says: they reach processes or raw memory.
DENIED_MODULES = frozenset(
    {"_posixsubprocess", "subprocess", "ctypes", "_ctypes", "multiprocessing", "pty", "cffi"}
)
_WRITE_EVENTS = frozenset(
    {
        "os.remove", "os.rename", "os.mkdir", "os.rmdir", "os.symlink", "os.link", "os.chmod",
        "os.chown", "os.truncate", "os.utime", "os.chflags", "os.lchflags", "os.setxattr",
        "os.removexattr", "os.chdir", "shutil.rmtree", "shutil.copyfile", "shutil.move",
    }
)  # fmt: skip
_PROCESS_EVENTS = frozenset(
    {
        "os.fork", "os.forkpty", "os.exec", "os.posix_spawn", "os.spawn", "os.system",
        "os.startfile", "os.kill", "os.killpg", "subprocess.Popen", "pty.spawn",
        "ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata", "sys.remote_exec",
    }
)  # fmt: skip
_NETWORK_EVENTS = frozenset(
    {"socket.__new__", "socket.getaddrinfo", "socket.gethostbyname", "socket.connect"}
)
_INTROSPECTION_EVENTS = frozenset(
    {"gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys._current_frames"}
)


def arm(read_roots: tuple[str, ...], violations: list[SandboxViolation]) -> None:
    """Add the audit hook; each refusal is also appended to ``violations``."""
    error, kind_of = SandboxViolation, type
    simple = {e: "creating processes is not allowed" for e in _PROCESS_EVENTS}
    simple |= {e: "changing files is not allowed" for e in _WRITE_EVENTS}
    simple |= {e: "introspecting the interpreter is not allowed" for e in _INTROSPECTION_EVENTS}
    simple |= {e: "the network is off in function agents (use ctx.http)" for e in _NETWORK_EVENTS}
    denied, fsdecode = DENIED_MODULES, os.fsdecode
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    write_modes = frozenset("wax+")

    def on_open(path: Any, mode: Any, flags: Any) -> str | None:
        writing = kind_of(mode) is str and not write_modes.isdisjoint(mode)
        if writing or (kind_of(flags) is int and flags & write_flags):
            return f"writing files is not allowed ({path!r})"
        if kind_of(path) is int:
            return None
        if kind_of(path) not in (str, bytes):  # a subclass could answer anything below
            return "reading files outside the Python installation (not a plain path)"
        name = fsdecode(path)
        if "/../" in name or name.endswith("/..") or not name.startswith(read_roots):
            return f"reading files outside the Python installation ({name!r})"
        return None

    def refusal(event: str, args: tuple[Any, ...]) -> str | None:
        if event in simple:
            return f"{simple[event]} ({event})"
        if event == "object.__getattr__" and args[1] == "tb_frame":
            return "introspecting the interpreter is not allowed (frames)"
        if event == "open":
            return on_open(*(*args, None, None, None)[:3])
        name = args[0] if event == "import" and kind_of(args[0]) is str else ""
        if name and name.partition(".")[0] in denied:
            return f"import of '{name}' is not allowed"
        return None

    def hook(event: str, args: tuple[Any, ...]) -> None:
        message = refusal(event, args)
        if message is not None:
            violation = error(message)
            violations.append(violation)
            raise violation

    sys.addaudithook(hook)


def restricted_import(allowed: frozenset[str]) -> Callable[..., Any]:
    """An ``__import__`` for the agent's code that only admits ``allowed`` modules."""
    real_import = builtins.__import__

    def guarded(
        name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0
    ) -> Any:
        if type(name) is not str or level != 0 or not _admitted(name, allowed):
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
    names = dict(vars(builtins))
    for name in ("open", "input", "breakpoint", "exit", "quit", "help", "copyright", "credits"):
        names.pop(name, None)
    names["__import__"] = restricted_import(allowed)
    return names


def forget_denied_modules() -> None:
    """Drop the modules the runner itself used (ctypes) so the code finds none loaded."""
    for name in [n for n in sys.modules if n.split(".")[0] in DENIED_MODULES]:
        del sys.modules[name]
