"""Namespaces, process flags, capabilities, rlimits and descriptors of the sandbox child.

``enter_namespaces`` unshares a user, network and PID namespace (the user namespace first, so
it works unprivileged; for a root worker it takes away every capability over the host) and forks:
the first process of a PID namespace is the only one that lives in it. The outer process only
waits and ends the way the inner one did; the inner one runs the agent. ``harden`` then makes
the inner process undumpable (nothing of its own uid may ptrace it or read its /proc files),
sets ``no_new_privs``, drops every capability the new user namespace gave it, applies the
rlimits and closes any descriptor but its pipes.

Standard library only (ctypes).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
from collections.abc import Mapping
from typing import Any, NoReturn

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
CLONE_NEWPID = 0x20000000
_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_SET_NO_NEW_PRIVS = 38
_CAP_VERSION_3 = 0x20080522


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _unshare(flags: int) -> bool:
    return bool(_libc().unshare(flags) == 0)


def enter_namespaces(skip: frozenset[str], keep_fds: tuple[int, ...]) -> dict[str, bool]:
    """Unshare what this kernel allows and fork into the PID namespace; which ones held.

    Returns in the inner process only. ``skip`` names layers to treat as unavailable.
    """
    held = {"user_ns": False, "net_ns": False, "pid_ns": False}
    if "user_ns" not in skip and _unshare(CLONE_NEWUSER):
        held["user_ns"] = True
    if "net_ns" not in skip and _unshare(CLONE_NEWNET):
        held["net_ns"] = True
    if "pid_ns" not in skip and _unshare(CLONE_NEWPID):
        held["pid_ns"] = True
        pid = os.fork()
        if pid:
            _wait_and_mirror(pid, keep_fds)
        with contextlib.suppress(OSError):
            _libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    return held


def _wait_and_mirror(pid: int, fds: tuple[int, ...]) -> NoReturn:
    """The outer process: hold nothing of the child's, wait, end as it ended."""
    code = 1
    try:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code < 0:  # killed: the parent reads the signal (CPU limit, crash) from ours
            with contextlib.suppress(OSError, ValueError):
                signal.signal(-code, signal.SIG_DFL)
            os.kill(os.getpid(), -code)
            code = 128 - code
    finally:
        os._exit(code)


def harden(limits: Mapping[str, Any], keep_fds: tuple[int, ...]) -> dict[str, Any]:
    """Process flags, capabilities, rlimits, descriptors; what held and which fds were open."""
    libc = _libc()
    done: dict[str, Any] = {
        "undumpable": libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) == 0,
        "no_new_privs": libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0,
        "capabilities_dropped": _drop_capabilities(libc),
    }
    set_limits(limits)
    done["fds"] = close_other_fds(keep_fds)
    return done


def _drop_capabilities(libc: ctypes.CDLL) -> bool:
    header = ctypes.create_string_buffer(ctypes.sizeof(ctypes.c_uint32) * 2)
    ctypes.memmove(header, _CAP_VERSION_3.to_bytes(4, "little") + bytes(4), 8)
    data = ctypes.create_string_buffer(24)  # two sets of (effective, permitted, inheritable)
    return bool(libc.capset(header, data) == 0)


def set_limits(limits: Mapping[str, Any]) -> None:
    """The rlimits of one call.

    The CPU limit is both soft and hard: the first process of a PID namespace ignores
    SIGXCPU, so the kernel's SIGKILL at the hard limit is what ends a busy loop.
    """
    cpu = max(1, int(limits["cpu_seconds"] + 0.999))
    memory = int(limits["memory_mb"]) * 1024 * 1024
    _limit(resource.RLIMIT_CPU, cpu)
    _limit(resource.RLIMIT_AS, memory)
    _limit(resource.RLIMIT_FSIZE, 0)
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_NOFILE, 64)
    _limit(resource.RLIMIT_NPROC, 0)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past FSIZE fails, not kills


def _limit(which: int, value: int) -> None:
    _soft, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(which, (value, value))


def open_fds() -> list[int]:
    """The descriptors open in this process (from /proc/self/fd, without the listing's own)."""
    listed = [int(n) for n in os.listdir("/proc/self/fd") if n.isdigit()]
    return sorted(fd for fd in listed if _is_open(fd))


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def close_other_fds(keep: tuple[int, ...]) -> list[int]:
    """Close every descriptor but ``keep`` (none should be there); the ones that were open."""
    found = open_fds()
    for fd in found:
        if fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)
    return found
