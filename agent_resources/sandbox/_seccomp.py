"""A seccomp allow-list for the sandbox child: every system call not listed fails with EPERM.

Installed by the runner as its last step before the agent's code runs (after every import and
the Landlock ruleset), with ``no_new_privs``; it cannot be lifted, holds for root, and covers
every thread (TSYNC). The list is what CPython needs to run code that is already imported and
to talk over its inherited pipes (taken from ``strace -f`` of the runner; see
``tests/agent_resources/sandbox/test_seccomp.py``): memory, futexes, clocks, signals to itself,
reading files (Landlock says which). There is no socket call, no process or thread creation, no
exec, no file change, no ptrace, no io_uring, no pidfd, no namespace or mount call on it.

No threads: the kernel exempts uid 0 from ``RLIMIT_NPROC``, so a root worker's child cloning
threads with no stack of their own (nothing counted under ``RLIMIT_AS``) would take every
process id of the host in about a second (``pid_max`` is often 32,768); an unprivileged
worker's child could not start one anyway (its ``RLIMIT_NPROC`` is 0).

Calls with arguments checked: ``openat``/``open`` only without write, create, truncate, append
or ``O_PATH`` flags; ``kill``/``tkill``/``tgkill`` only to this process; ``prlimit64`` only
reading this process's limits. ``ioctl`` answers ENOTTY (CPython asks whether a file is a
terminal), ``clone3`` ENOSYS (glibc then falls back to ``clone``, which is refused).
Another ABI (i386, x32 on x86_64) kills the process, since its numbers would dodge the list.

Standard library only (ctypes, struct).
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct

_PR_SET_NO_NEW_PRIVS = 38
_SECCOMP_SET_MODE_FILTER = 1
_SECCOMP_FILTER_FLAG_TSYNC = 1
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_RET_KILL_PROCESS = 0x80000000
_EPERM, _ENOTTY, _ENOSYS = 1, 25, 38
_O_PATH = 0o10000000  # the same on x86_64 and aarch64
_OPEN_REFUSED = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND | _O_PATH
# BPF opcodes
_LD_ABS = 0x00 | 0x00 | 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ = 0x05 | 0x10  # BPF_JMP | BPF_JEQ | BPF_K
_JSET = 0x05 | 0x40  # BPF_JMP | BPF_JSET | BPF_K
_RET = 0x06  # BPF_RET | BPF_K
_NR, _ARCH = 0, 4

Instruction = tuple[int, int, int, int]


def _arg_low(index: int) -> int:
    return 16 + 8 * index  # seccomp_data.args[index], low 32 bits (little-endian)


def _arg_high(index: int) -> int:
    return 20 + 8 * index


class Arch:
    """System call numbers of one architecture."""

    def __init__(self, name: str, audit: int, nrs: dict[str, int]) -> None:
        self.name = name
        self.audit = audit
        self.nrs = nrs


X86_64 = Arch(
    "x86_64",
    0xC000003E,
    {
        "read": 0, "write": 1, "open": 2, "close": 3, "stat": 4, "fstat": 5, "lstat": 6,
        "poll": 7, "lseek": 8, "mmap": 9, "mprotect": 10, "munmap": 11, "brk": 12,
        "rt_sigaction": 13, "rt_sigprocmask": 14, "rt_sigreturn": 15, "ioctl": 16,
        "pread64": 17, "readv": 19, "writev": 20, "access": 21, "select": 23,
        "sched_yield": 24, "mremap": 25, "madvise": 28, "dup": 32, "dup2": 33,
        "nanosleep": 35, "getpid": 39, "clone": 56, "exit": 60, "kill": 62, "uname": 63,
        "fcntl": 72, "getcwd": 79, "readlink": 89, "gettimeofday": 96, "getrusage": 98,
        "sysinfo": 99, "times": 100, "getuid": 102, "getgid": 104, "geteuid": 107,
        "getegid": 108, "getppid": 110, "sigaltstack": 131, "gettid": 186, "tkill": 200,
        "time": 201, "futex": 202, "sched_getaffinity": 204, "getdents64": 217,
        "restart_syscall": 219, "clock_gettime": 228, "clock_getres": 229,
        "clock_nanosleep": 230, "exit_group": 231, "tgkill": 234, "openat": 257,
        "newfstatat": 262, "readlinkat": 267, "faccessat": 269, "pselect6": 270,
        "ppoll": 271, "set_robust_list": 273, "dup3": 292, "preadv": 295, "prlimit64": 302,
        "seccomp": 317, "getrandom": 318, "statx": 332, "rseq": 334, "clone3": 435,
        "close_range": 436, "faccessat2": 439,
    },
)  # fmt: skip
AARCH64 = Arch(
    "aarch64",
    0xC00000B7,
    {
        "getcwd": 17, "dup": 23, "dup3": 24, "fcntl": 25, "ioctl": 29, "faccessat": 48,
        "openat": 56, "close": 57, "getdents64": 61, "lseek": 62, "read": 63, "write": 64,
        "readv": 65, "writev": 66, "pread64": 67, "preadv": 69, "pselect6": 72, "ppoll": 73,
        "readlinkat": 78, "newfstatat": 79, "fstat": 80, "exit": 93, "exit_group": 94,
        "futex": 98, "set_robust_list": 99, "nanosleep": 101, "clock_gettime": 113,
        "clock_getres": 114, "clock_nanosleep": 115, "sched_getaffinity": 123,
        "sched_yield": 124, "restart_syscall": 128, "kill": 129, "tkill": 130,
        "tgkill": 131, "sigaltstack": 132, "rt_sigaction": 134, "rt_sigprocmask": 135,
        "rt_sigreturn": 139, "times": 153, "uname": 160, "getrusage": 165,
        "gettimeofday": 169, "getpid": 172, "getppid": 173, "getuid": 174, "geteuid": 175,
        "getgid": 176, "getegid": 177, "gettid": 178, "sysinfo": 179, "brk": 214,
        "munmap": 215, "mremap": 216, "clone": 220, "mmap": 222, "mprotect": 226,
        "madvise": 233, "prlimit64": 261, "seccomp": 277, "getrandom": 278, "statx": 291,
        "rseq": 293, "clone3": 435, "close_range": 436, "faccessat2": 439,
    },
)  # fmt: skip
ARCHES = {"x86_64": X86_64, "aarch64": AARCH64}
# Allowed whatever their arguments: none reaches outside this process but through its own
# fds (pipes) or a path Landlock judges.
ALLOWED = (
    "read", "write", "readv", "writev", "pread64", "preadv", "lseek", "close", "close_range",
    "fstat", "stat", "lstat", "newfstatat", "statx", "getdents64", "readlink", "readlinkat",
    "access", "faccessat", "faccessat2", "getcwd", "fcntl", "dup", "dup2", "dup3",
    "mmap", "munmap", "mprotect", "mremap", "madvise", "brk", "futex", "set_robust_list",
    "rseq", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack",
    "restart_syscall", "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep",
    "gettimeofday", "time", "times", "getrusage", "uname", "sysinfo", "poll", "ppoll",
    "select", "pselect6", "sched_yield", "sched_getaffinity", "getpid", "gettid", "getppid",
    "getuid", "geteuid", "getgid", "getegid", "getrandom", "exit", "exit_group",
)  # fmt: skip


def _ins(code: int, k: int, jt: int = 0, jf: int = 0) -> Instruction:
    return (code, jt, jf, k & 0xFFFFFFFF)


def _when(nr: int, block: list[Instruction]) -> list[Instruction]:
    """``block`` (which must end in a return) for system call ``nr``; skipped for others."""
    return [_ins(_LD_ABS, _NR), _ins(_JEQ, nr, jf=len(block)), *block]


def program(arch: Arch, pid: int) -> list[Instruction]:
    """The BPF program: the allow-list, the argument checks, EPERM for everything else."""
    allow, deny = _ins(_RET, _RET_ALLOW), _ins(_RET, _RET_ERRNO | _EPERM)
    nrs = arch.nrs
    prog = [
        _ins(_LD_ABS, _ARCH),
        _ins(_JEQ, arch.audit, jt=1),
        _ins(_RET, _RET_KILL_PROCESS),
        _ins(_LD_ABS, _NR),
    ]
    if arch is X86_64:  # x32 system calls carry bit 30
        prog += [_ins(_JSET, 0x40000000, jf=1), _ins(_RET, _RET_KILL_PROCESS)]
    for name in ALLOWED:
        if name in nrs:
            prog += [_ins(_JEQ, nrs[name], jf=1), allow]
    prog += _when(nrs["ioctl"], [_ins(_RET, _RET_ERRNO | _ENOTTY)])
    prog += _when(nrs["clone3"], [_ins(_RET, _RET_ERRNO | _ENOSYS)])
    for name, flags_arg in (("open", 1), ("openat", 2)):
        if name in nrs:
            check = [_ins(_LD_ABS, _arg_low(flags_arg)), _ins(_JSET, _OPEN_REFUSED, jt=1), allow]
            prog += _when(nrs[name], [*check, deny])
    for name in ("kill", "tkill", "tgkill"):
        prog += _when(nrs[name], [_ins(_LD_ABS, _arg_low(0)), _ins(_JEQ, pid, jf=1), allow, deny])
    # prlimit64(0, resource, NULL, old): reading its own limits only.
    reading = [
        _ins(_LD_ABS, _arg_low(0)),
        _ins(_JEQ, 0, jf=6),
        _ins(_LD_ABS, _arg_high(0)),
        _ins(_JEQ, 0, jf=4),
        _ins(_LD_ABS, _arg_low(2)),
        _ins(_JEQ, 0, jf=2),
        _ins(_LD_ABS, _arg_high(2)),
        _ins(_JEQ, 0, jt=1),
        deny,
        allow,
    ]
    prog += _when(nrs["prlimit64"], reading)
    prog.append(deny)
    return prog


def install() -> bool:
    """Install the allow-list on every thread of this process; False if unsupported."""
    arch = ARCHES.get(platform.machine())
    if arch is None:
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    prog = program(arch, os.getpid())
    raw = b"".join(struct.pack("HBBI", *ins) for ins in prog)
    buffer = ctypes.create_string_buffer(raw, len(raw))
    fprog = ctypes.create_string_buffer(
        struct.pack("HxxxxxxQ", len(prog), ctypes.addressof(buffer)), 16
    )
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return False
    flags = _SECCOMP_FILTER_FLAG_TSYNC
    done = libc.syscall(arch.nrs["seccomp"], _SECCOMP_SET_MODE_FILTER, flags, fprog)
    return bool(done == 0)
