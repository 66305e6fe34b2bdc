"""The seccomp allow-list on its own (no other layer, no Python guard): every system call that
reaches outside the process fails with EPERM, while what CPython needs keeps working."""

from __future__ import annotations

import platform
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent_resources.sandbox import _seccomp

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or platform.machine() not in _seccomp.ARCHES,
    reason="the seccomp filter is written for Linux on x86_64 and aarch64",
)

HEADERS = {
    "x86_64": Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h"),
    "aarch64": Path("/usr/include/asm-generic/unistd.h"),
}


def _header_numbers(path: Path) -> dict[str, int]:
    defines = dict(re.findall(r"#define\s+(__NR\w+)\s+(\w+)", path.read_text()))

    def value(name: str) -> int | None:
        seen = 0
        while name in defines and seen < 5:
            name, seen = defines[name], seen + 1
        return int(name) if name.isdigit() else None

    numbers = {}
    for name in defines:
        if name.startswith("__NR_") and (number := value(name)) is not None:
            numbers[name.removeprefix("__NR_")] = number
    numbers.setdefault("newfstatat", numbers.get("fstatat", -1))
    return numbers


@pytest.mark.parametrize("arch", sorted(_seccomp.ARCHES))
def test_the_tables_match_the_kernel_headers(arch: str) -> None:
    header = HEADERS[arch]
    if not header.exists():
        pytest.skip(f"{header} is not installed")
    numbers = _header_numbers(header)
    table = _seccomp.ARCHES[arch].nrs
    wrong = {n: (nr, numbers.get(n)) for n, nr in table.items() if numbers.get(n) != nr}
    assert wrong == {}


# Attacks with arbitrary Python (ctypes at hand): the call and the arguments an attacker
# would use; every one must fail with EPERM (1).
X86_ATTACKS = {
    "socket inet": (41, 2, 1, 0),
    "socket unix": (41, 1, 1, 0),
    "socketpair": (53, 1, 1, 0, 0),
    "connect": (42, 0, 0, 0),
    "sendto": (44, 0, 0, 0, 0x20000000, 0, 0),  # MSG_FASTOPEN
    "sendmsg fastopen": (46, 0, 0, 0x20000000),
    "fork": (57,),
    "vfork": (58,),
    "execve": (59, 0, 0, 0),
    "ptrace attach parent": (101, 16, "ppid", 0, 0),
    "process_vm_readv": (310, "ppid", 0, 1, 0, 1, 0),
    "io_uring_setup": (425, 8, 0),
    "open_by_handle_at": (304, -100, 0, 0),
    "name_to_handle_at": (303, -100, 0, 0, 0, 0),
    "pidfd_open": (434, "ppid", 0),
    "pidfd_getfd": (438, 0, 3, 0),
    "memfd_create": (319, 0, 0),
    "bpf": (321, 0, 0, 0),
    "perf_event_open": (298, 0, 0, -1, -1, 0),
    "userfaultfd": (323, 0),
    "keyctl": (250, 0, 0, 0),
    "add_key": (248, 0, 0, 0, 0, 0),
    "unshare": (272, 0x40000000),
    "setns": (308, 0, 0),
    "mount": (165, 0, 0, 0, 0, 0),
    "chroot": (161, 0),
    "setuid": (105, 0),
    "kill parent": (62, "ppid", 0),
    "kill all": (62, -1, 0),
    "prlimit raise": (302, 0, 7, "buf", 0),
    "prlimit other": (302, "ppid", 7, 0, "buf"),
    "chdir": (80, 0),
    "mknod": (133, 0, 0, 0),
    "clone process": (56, 17, 0, 0, 0, 0),  # SIGCHLD, no CLONE_THREAD
    "clone thread": (56, 0x10F00, 0, 0, 0, 0),  # VM|FS|FILES|SIGHAND|THREAD, no stack
    "seccomp again": (317, 1, 0, 0),
    "landlock": (444, 0, 0, 1),
    "personality": (135, 0x0008),
    "ioperm": (173, 0, 1, 1),
    "kexec_load": (246, 0, 0, 0, 0),
    "init_module": (175, 0, 0, 0),
}
AARCH64_NUMBERS = {
    41: 198, 53: 199, 42: 203, 44: 206, 46: 211, 59: 221, 101: 117, 310: 270, 425: 425,
    304: 265, 303: 264, 434: 434, 438: 438, 319: 279, 321: 280, 298: 241, 323: 282,
    250: 219, 248: 217, 272: 97, 308: 268, 165: 40, 161: 51, 105: 146, 62: 129, 302: 261,
    80: 49, 56: 220, 317: 277, 444: 444, 135: 92, 246: 104, 175: 105,
}  # fmt: skip

PROBE = """
import ctypes, errno, os, socket, sys, threading, time
sys.path.append({root!r})
from agent_resources.sandbox import _seccomp
libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(64)
ppid = os.getppid()
existing = {existing!r}
keep = open(existing)
assert _seccomp.install()
failures = []
for name, call in {attacks!r}.items():
    args = [ppid if a == "ppid" else ctypes.addressof(buf) if a == "buf" else a for a in call]
    result = libc.syscall(*args)
    if result != -1 or ctypes.get_errno() != errno.EPERM:
        failures.append(f"{{name}}: {{result}} errno {{ctypes.get_errno()}}")
def refused(what, call):
    try:
        call()
    except PermissionError:
        return
    failures.append(f"not refused: {{what}}")
refused("fork", os.fork)
refused("posix_spawn", lambda: os.posix_spawn("/bin/true", ["true"], {{}}))
refused("write", lambda: open(existing + ".new", "w"))
refused("append", lambda: open(existing, "a"))
refused("O_PATH", lambda: os.open("/", os.O_PATH))
refused("unlink", lambda: os.unlink(existing))
refused("rename", lambda: os.rename(existing, existing + ".x"))
refused("mkdir", lambda: os.mkdir(existing + ".d"))
refused("chmod", lambda: os.chmod(existing, 0o777))
refused("socket", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
refused("setsid", os.setsid)
try:  # a root process is exempt from RLIMIT_NPROC: only the filter bounds its threads
    threading.Thread(target=time.sleep, args=(5,), daemon=True).start()
    failures.append("not refused: a thread")
except RuntimeError:
    pass
# What CPython needs goes on working.
assert open(existing).read() == "keep" and keep.read() == "keep"
time.sleep(0.01); os.urandom(8); os.kill(os.getpid(), 0)
import resource; resource.getrlimit(resource.RLIMIT_AS)
"abc".encode("cp1252")
print("\\n".join(failures) or "ok")
"""


def test_the_allow_list_refuses_every_way_out_and_keeps_python_running(tmp_path: Path) -> None:
    existing = tmp_path / "existing.txt"
    existing.write_text("keep")
    attacks = X86_ATTACKS
    if platform.machine() == "aarch64":
        attacks = {
            name: (AARCH64_NUMBERS[call[0]], *call[1:])
            for name, call in X86_ATTACKS.items()
            if call[0] in AARCH64_NUMBERS
        }
    root = str(Path(__file__).resolve().parents[3])
    code = PROBE.format(root=root, existing=str(existing), attacks=attacks)
    done = subprocess.run(
        [sys.executable, "-I", "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "ok"
    assert existing.read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.txt"]


def test_another_abi_is_killed_not_refused() -> None:
    if platform.machine() != "x86_64":
        pytest.skip("the i386 ABI exists on x86_64 only")
    prog = _seccomp.program(_seccomp.X86_64, 1)
    assert prog[0] == (0x20, 0, 0, 4)  # load the arch first
    assert prog[2] == (0x06, 0, 0, 0x80000000)  # kill on a mismatch
    assert prog[-1] == (0x06, 0, 0, 0x00050001)  # and EPERM for anything not listed


def test_function_agents_run_under_the_filter() -> None:
    from tests.agent_resources.sandbox.test_attacks import call

    assert call("def run(input, ctx):\n    return 1\n").usage["sandbox"]["seccomp"] is True
