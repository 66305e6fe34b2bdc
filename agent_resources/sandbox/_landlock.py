"""Landlock for the sandbox child: read Python's own files, nothing else; write nothing.

A Landlock ruleset handles every file access right the kernel knows (by ABI version); the only
rules grant reading files and listing folders beneath the given roots (the standard library and
site-packages). Everything else the process opens afterwards, by any path, through any
interpreter trick, is refused by the kernel with EACCES: the data folder, DAGSTER_HOME, the
asset store, ``/proc/<pid>/environ``, ``/etc``. From ABI 4 it also handles TCP bind and
connect with no rule (no TCP at all), from ABI 6 it scopes abstract UNIX sockets and signals to
this process. Applied after ``no_new_privs`` and before the seccomp filter (which has no
Landlock call on its list). Landlock does not judge ``stat``: metadata of other paths (whether
they exist, their size) stays visible; their content does not.

System calls 444-446 are the same on x86_64 and aarch64. Standard library only.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import struct
from collections.abc import Iterable

_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38
# Filesystem rights by the ABI that introduced them.
_READ_FILE, _READ_DIR = 1 << 2, 1 << 3
_FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
_NET_BIND_TCP, _NET_CONNECT_TCP = 1, 2
_SCOPE_ABSTRACT_UNIX, _SCOPE_SIGNAL = 1, 2


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def abi() -> int:
    """The kernel's Landlock ABI version; 0 without Landlock."""
    version = _libc().syscall(_CREATE_RULESET, None, 0, _CREATE_RULESET_VERSION)
    return max(int(version), 0)


def _ruleset_attr(version: int) -> bytes:
    fs = _FS_BY_ABI[max(v for v in _FS_BY_ABI if v <= version)]
    if version < 4:
        return struct.pack("=Q", fs)
    net = _NET_BIND_TCP | _NET_CONNECT_TCP
    if version < 6:
        return struct.pack("=QQ", fs, net)
    return struct.pack("=QQQ", fs, net, _SCOPE_ABSTRACT_UNIX | _SCOPE_SIGNAL)


def restrict(read_roots: Iterable[str]) -> int:
    """Allow reading beneath ``read_roots`` only; the ABI version applied, 0 if none.

    Raises:
        OSError: the kernel refused the ruleset (it would be unsafe to go on as if applied).
    """
    version = abi()
    if version < 1:
        return 0
    libc = _libc()
    attr = ctypes.create_string_buffer(_ruleset_attr(version))
    ruleset = libc.syscall(_CREATE_RULESET, attr, len(attr.raw), 0)
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset")
    try:
        for root in read_roots:
            _allow_reading(libc, ruleset, root)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
        if libc.syscall(_RESTRICT_SELF, ruleset, 0) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self")
    finally:
        os.close(ruleset)
    return version


def _allow_reading(libc: ctypes.CDLL, ruleset: int, root: str) -> None:
    try:
        fd = os.open(root, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # a root that does not exist grants nothing
    try:
        rights = _READ_FILE | (_READ_DIR if os.path.isdir(root) else 0)
        rule = ctypes.create_string_buffer(struct.pack("=Qi", rights, fd))
        if libc.syscall(_ADD_RULE, ruleset, _RULE_PATH_BENEATH, rule, 0) != 0:
            raise OSError(ctypes.get_errno(), f"landlock_add_rule {root}")
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
