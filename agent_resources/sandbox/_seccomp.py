"""A seccomp filter for the sandbox child: the kernel refuses what the audit hook also refuses.

The audit hook in ``runner.py`` gives clear errors, but it lives inside the interpreter the
agent's code runs in. This filter does not: once installed (with ``no_new_privs``) it cannot be
lifted, and it holds even for root, where ``RLIMIT_NPROC`` does not. Refused with ``EPERM``:
creating processes (fork, vfork, clone without CLONE_THREAD, clone3 gets ENOSYS so threads fall
back to clone), exec, signals to other processes, ptrace and cross-process memory access,
opening files for writing, and every call that creates, removes, renames or changes a file.

Standard library only (ctypes, struct); the runner imports it before the agent's code runs,
and the agent's code can import neither.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct

_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_RET_KILL_PROCESS = 0x80000000
_EPERM, _ENOSYS = 1, 38
_CLONE_THREAD = 0x00010000
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
# BPF opcodes
_LD_ABS = 0x00 | 0x00 | 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ = 0x05 | 0x10 | 0x00  # BPF_JMP | BPF_JEQ | BPF_K
_JSET = 0x05 | 0x40 | 0x00  # BPF_JMP | BPF_JSET | BPF_K
_RET = 0x06 | 0x00  # BPF_RET | BPF_K
_NR, _ARCH = 0, 4


def _arg(index: int) -> int:
    return 16 + 8 * index  # low 32 bits of args[index] (little-endian)


class Arch:
    """Syscall numbers of one architecture."""

    def __init__(self, audit: int, nrs: dict[str, int]) -> None:
        self.audit = audit
        self.nrs = nrs


_X86_64 = Arch(
    0xC000003E,
    {
        "clone": 56, "fork": 57, "vfork": 58, "execve": 59, "execveat": 322, "clone3": 435,
        "kill": 62, "tkill": 200, "tgkill": 234, "pidfd_send_signal": 424, "ptrace": 101,
        "process_vm_readv": 310, "process_vm_writev": 311, "open": 2, "openat": 257,
        "openat2": 437, "creat": 85, "unlink": 87, "unlinkat": 263, "rename": 82,
        "renameat": 264, "renameat2": 316, "mkdir": 83, "mkdirat": 258, "rmdir": 84,
        "link": 86, "linkat": 265, "symlink": 88, "symlinkat": 266, "chmod": 90, "fchmod": 91,
        "fchmodat": 268, "chown": 92, "fchown": 93, "lchown": 94, "fchownat": 260,
        "truncate": 76, "ftruncate": 77, "mknod": 133, "mknodat": 259, "mount": 165,
        "umount2": 166, "chroot": 161, "unshare": 272, "setns": 308, "setsid": 112,
        "setpgid": 109,
    },
)  # fmt: skip
_AARCH64 = Arch(
    0xC00000B7,
    {
        "clone": 220, "execve": 221, "execveat": 281, "clone3": 435, "kill": 129,
        "tkill": 130, "tgkill": 131, "pidfd_send_signal": 424, "ptrace": 117,
        "process_vm_readv": 270, "process_vm_writev": 271, "openat": 56, "openat2": 437,
        "unlinkat": 35, "renameat": 38, "renameat2": 276, "mkdirat": 34, "linkat": 37,
        "symlinkat": 36, "fchmod": 52, "fchmodat": 53, "fchown": 55, "fchownat": 54,
        "truncate": 45, "ftruncate": 46, "mknodat": 33, "mount": 40, "umount2": 39,
        "chroot": 51, "unshare": 97, "setns": 268, "setsid": 157, "setpgid": 154,
    },
)  # fmt: skip
_ARCHES = {"x86_64": _X86_64, "aarch64": _AARCH64}
_DENIED = [
    "fork",
    "vfork",
    "execve",
    "execveat",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "creat",
    "unlink",
    "unlinkat",
    "rename",
    "renameat",
    "renameat2",
    "mkdir",
    "mkdirat",
    "rmdir",
    "link",
    "linkat",
    "symlink",
    "symlinkat",
    "chmod",
    "fchmod",
    "fchmodat",
    "chown",
    "fchown",
    "lchown",
    "fchownat",
    "truncate",
    "ftruncate",
    "mknod",
    "mknodat",
    "mount",
    "umount2",
    "chroot",
    "unshare",
    "setns",
    "setsid",
    "setpgid",
    "tkill",
    "pidfd_send_signal",
]


def _ins(code: int, k: int, jt: int = 0, jf: int = 0) -> tuple[int, int, int, int]:
    return (code, jt, jf, k & 0xFFFFFFFF)


def program(arch: Arch, pid: int) -> list[tuple[int, int, int, int]]:
    """The BPF program: ALLOW unless a rule below refuses."""
    deny = _ins(_RET, _RET_ERRNO | _EPERM)
    allow = _ins(_RET, _RET_ALLOW)
    nrs = arch.nrs
    prog = [
        _ins(_LD_ABS, _ARCH),
        _ins(_JEQ, arch.audit, jt=1),
        _ins(_RET, _RET_KILL_PROCESS),  # another ABI (i386, x32) would dodge the numbers below
        _ins(_LD_ABS, _NR),
    ]
    if arch is _X86_64:  # x32 syscalls carry bit 30 on x86_64
        prog += [_ins(0x05 | 0x30, 0x40000000, jt=0, jf=1), _ins(_RET, _RET_KILL_PROCESS)]
    for name in _DENIED:
        if name in nrs:
            prog += [_ins(_JEQ, nrs[name], jf=1), deny]
    prog += [_ins(_JEQ, nrs["clone3"], jf=1), _ins(_RET, _RET_ERRNO | _ENOSYS)]
    prog += [_ins(_JEQ, nrs["openat2"], jf=1), _ins(_RET, _RET_ERRNO | _ENOSYS)]
    # clone: threads only.
    prog += [
        _ins(_JEQ, nrs["clone"], jf=4),
        _ins(_LD_ABS, _arg(0)),
        _ins(_JSET, _CLONE_THREAD, jf=1),
        allow,
        deny,
    ]
    # open/openat: reading only (flags are args[1] of open, args[2] of openat).
    for name, flags_arg in (("open", 1), ("openat", 2)):
        if name in nrs:
            prog += [
                _ins(_LD_ABS, _NR),
                _ins(_JEQ, nrs[name], jf=4),
                _ins(_LD_ABS, _arg(flags_arg)),
                _ins(_JSET, _WRITE_FLAGS, jf=1),
                deny,
                allow,
            ]
    # kill/tgkill: only this process itself.
    for name in ("kill", "tgkill"):
        prog += [
            _ins(_LD_ABS, _NR),
            _ins(_JEQ, nrs[name], jf=4),
            _ins(_LD_ABS, _arg(0)),
            _ins(_JEQ, pid, jt=1),
            deny,
            allow,
        ]
    prog.append(allow)
    return prog


def install() -> bool:
    """Install the filter on this process (and any thread it starts); False if unsupported."""
    arch = _ARCHES.get(platform.machine())
    if arch is None:
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    prog = program(arch, os.getpid())
    raw = b"".join(struct.pack("HBBI", *ins) for ins in prog)
    buffer = ctypes.create_string_buffer(raw, len(raw))
    fprog = struct.pack("HxxxxxxQ", len(prog), ctypes.addressof(buffer))
    fprog_buffer = ctypes.create_string_buffer(fprog, len(fprog))
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return False
    return bool(libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, fprog_buffer, 0, 0) == 0)
