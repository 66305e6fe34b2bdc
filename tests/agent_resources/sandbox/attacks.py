"""What the sandbox attack tests share: the attacks (code an attacker would write, as
function-agent source), a local TCP/UDP listener that counts what reaches it, running an
attack through the real function agent, and the check that no secret of the worker leaked."""

from __future__ import annotations

import base64
import contextlib
import socket
import textwrap
import threading
from pathlib import Path
from typing import Any, ClassVar

from agent_resources.base import AgentError, AgentRequest, AgentResult
from agent_resources.catalog import AgentEntry
from agent_resources.function import FunctionAgent

SECRET = "sk-declaredsecret0123456789abcdef"
WORKER_SECRET = "sk-workersecret-9f8e7d6c5b4a39281706"
KEY_FILE_SECRET = "Zm9vYmFyYmF6cXV4LXRoZS1mZXJuZXQta2V5LTAxMjM0NTY="
ASSET_SECRET = "another run's private asset 5b1d"
OS = (
    "[c for c in ().__class__.__base__.__subclasses__() "
    "if c.__name__ == '_wrap_close'][0].__init__.__globals__"
)


class Unguarded(FunctionAgent):
    """The same agent with the Python guards off: only the kernel layers stand."""

    python_guards: ClassVar[bool] = False


class Listener:
    """A TCP and a UDP socket on 127.0.0.1 that count whatever reaches them."""

    def __init__(self) -> None:
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.arrived: list[str] = []
        self._threads = [
            threading.Thread(target=self._accept, daemon=True),
            threading.Thread(target=self._receive, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @property
    def tcp_port(self) -> int:
        return int(self.tcp.getsockname()[1])

    @property
    def udp_port(self) -> int:
        return int(self.udp.getsockname()[1])

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.tcp.accept()
                self.arrived.append("tcp")
                conn.close()

    def _receive(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                self.udp.recv(65536)
                self.arrived.append("udp")

    def close(self) -> None:
        self.tcp.close()
        self.udp.close()


def entry(code: str, hosts: list[str] | None = None, **limits: Any) -> AgentEntry:
    return AgentEntry.model_validate(
        {
            "slug": "attacker",
            "type": "function",
            "description": "test",
            "config": {"code": textwrap.dedent(code), "allowed_hosts": hosts or []},
            "env": [{"name": "ATTACKER_API_KEY", "secret": True}],
            "limits": {"timeout_seconds": 8, "cpu_seconds": 4, "memory_mb": 256, **limits},
        }
    )


def attempt(
    code: str, data: Any, *, guarded: bool = False, hosts: list[str] | None = None
) -> tuple[AgentResult | None, str]:
    """Run ``code``; the result (None if it failed) and every text the worker got back."""
    agent_class = FunctionAgent if guarded else Unguarded
    request = AgentRequest(
        run_id="run-1", step_id="step", attempt=1, input=data, env={"ATTACKER_API_KEY": SECRET}
    )
    try:
        result = agent_class(entry(code, hosts)).run(request)
    except AgentError as exc:
        return None, f"{exc.kind}: {exc}"
    return result, repr(result.output) + repr(result.usage) + repr(result.deliverables)


def assert_no_secret(text: str) -> None:
    worker_env = [v for v in _initial_environment() if len(v) >= 16 and v not in (SECRET,)]
    for secret in (WORKER_SECRET, KEY_FILE_SECRET, ASSET_SECRET, SECRET, *worker_env):
        raw = secret.encode()
        for form in (secret, base64.b64encode(raw).decode(), raw.hex(), raw.hex().upper()):
            assert form not in text, f"a secret of the worker leaked ({secret[:12]}...)"


def _initial_environment() -> list[str]:
    values = Path("/proc/self/environ").read_bytes().split(b"\0")
    return [v.partition(b"=")[2].decode("utf-8", "replace") for v in values if b"=" in v]


# Each attack is a function of the input; the harness records what it returned or raised.
HARNESS = """
def run(input, ctx):
    results = {}
    for name, attack in ATTACKS.items():
        try:
            results[name] = "GOT " + repr(attack(input))[:3000]
        except BaseException as exc:
            results[name] = "refused " + type(exc).__name__ + ": " + str(exc)[:200]
    return results
"""

FILE_ATTACKS = """
import os, base64

def read_each(input):
    got = {}
    for path in input["files"]:
        try:
            with open(path, "rb") as f:
                got[path] = base64.b64encode(f.read(4096)).decode()
        except OSError as exc:
            got[path] = type(exc).__name__
    return got if any(len(v) > 20 for v in got.values()) else _raise(got)

def list_each(input):
    got = {}
    for path in input["folders"]:
        try:
            got[path] = os.listdir(path)
        except OSError as exc:
            got[path] = type(exc).__name__
    return got if any(isinstance(v, list) for v in got.values()) else _raise(got)

def write(input):
    with open(input["write"], "w") as f:
        f.write("x")

def os_open_write(input):
    return os.open(input["write"], os.O_WRONLY | os.O_CREAT)

def parent_fds(input):
    return os.listdir(f"/proc/{input['ppid']}/fd")

def parent_fd_open(input):
    return open(f"/proc/{input['ppid']}/fd/3", "rb").read(100)

def parent_cwd_link(input):
    return os.readlink(f"/proc/{input['ppid']}/cwd")

def str_subclass_path(input):
    class Sneaky(str):
        def startswith(self, *a):
            return True
    return open(Sneaky(input["files"][0])).read()

def fd_scan(input):
    got = {}
    for fd in range(3, 256):
        try:
            os.fstat(fd)
            got[fd] = os.read(fd, 100)
        except OSError:
            pass
    return got if got else _raise("no fd")

def _raise(what):
    raise PermissionError(repr(what)[:300])

ATTACKS = {n: f for n, f in dict(globals()).items() if callable(f) and not n.startswith("_")
           and n not in ("run",) and f.__module__ == __name__}
"""


SYSCALL_ATTACKS = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
NR = {"x86_64": dict(ptrace=101, process_vm_readv=310, io_uring_setup=425,
                     open_by_handle_at=304, pidfd_open=434, pidfd_getfd=438, socket=41,
                     memfd_create=319, unshare=272, setns=308, bpf=321, kill=62),
      "aarch64": dict(ptrace=117, process_vm_readv=270, io_uring_setup=425,
                      open_by_handle_at=265, pidfd_open=434, pidfd_getfd=438, socket=198,
                      memfd_create=279, unshare=97, setns=268, bpf=280, kill=129),
      }[os.uname().machine]

def _call(name, *args):
    result = libc.syscall(NR[name], *args)
    if result < 0:
        raise OSError(ctypes.get_errno(), f"{name}: {os.strerror(ctypes.get_errno())}")
    return result

buf = ctypes.create_string_buffer(4096)
iov = (ctypes.c_void_p * 2)(ctypes.addressof(buf), 4096)

def pidfd_then_getfd(input):
    pidfd = os.pidfd_open(input["ppid"])
    return os.read(_call("pidfd_getfd", pidfd, 3, 0), 100)

def pidfd_raw(input):
    return _call("pidfd_getfd", _call("pidfd_open", input["ppid"], 0), 3, 0)

def ptrace_attach(input):
    return _call("ptrace", 16, input["ppid"], 0, 0)

def process_vm_readv(input):
    return _call("process_vm_readv", input["ppid"], iov, 1, iov, 1, 0)

def io_uring_setup(input):
    return _call("io_uring_setup", 8, buf)

def open_by_handle_at(input):
    return _call("open_by_handle_at", -100, buf, 0)

def memfd(input):
    return _call("memfd_create", buf, 0)

def unshare_again(input):
    return _call("unshare", 0x10000000)

def kill_the_worker(input):
    return _call("kill", input["ppid"], 9)

def os_kill_the_worker(input):
    return os.kill(input["ppid"], 9)

def kill_everything(input):
    return os.kill(-1, 9) if False else _call("kill", -1, 0)

def fork(input):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    return pid

def exec_shell(input):
    return os.execv("/bin/sh", ["sh", "-c", "cat /proc/%d/environ" % input["ppid"]])

def posix_spawn(input):
    return os.posix_spawn("/bin/sh", ["sh"], {})

def setuid_root(input):
    return os.setuid(0)

ATTACKS = {n: f for n, f in dict(globals()).items() if callable(f) and not n.startswith("_")
           and getattr(f, "__module__", "") == __name__ and n != "run"}
"""


NETWORK_ATTACKS = """
import socket

def _target(input):
    return ("127.0.0.1", input["tcp"])

def tcp_connect(input):
    s = socket.socket(); s.settimeout(2); s.connect(_target(input)); return "connected"

def tcp_postgres(input):
    s = socket.create_connection(("127.0.0.1", 5432), timeout=2); return "connected"

def tcp_fastopen_sendto(input):
    s = socket.socket(); return s.sendto(b"GET / HTTP/1.0\\r\\n\\r\\n", 0x20000000, _target(input))

def tcp_fastopen_sendmsg_postgres(input):
    s = socket.socket()
    return s.sendmsg([b"\\0\\0\\0\\x08\\x04\\xd2\\x16\\x2f"], [], 0x20000000, ("127.0.0.1", 5432))

def udp_sendto(input):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    return s.sendto(b"leak", ("127.0.0.1", input["udp"]))

def dns_lookup(input):
    return socket.getaddrinfo("localhost", 80)

def dns_udp_query(input):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    query = b"\\x12\\x34\\x01\\x00\\x00\\x01" + bytes(6)
    return s.sendto(query, ("127.0.0.53", 53))

def unix_postgres(input):
    s = socket.socket(socket.AF_UNIX); s.connect("/var/run/postgresql/.s.PGSQL.5432")

def abstract_unix(input):
    s = socket.socket(socket.AF_UNIX); s.connect("\\0baton-test")

def socketpair(input):
    return socket.socketpair()

def raw_socket(input):
    return socket.socket(socket.AF_PACKET, socket.SOCK_RAW)

def netlink(input):
    return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)

def http_library(input):
    import urllib.request
    return urllib.request.urlopen(input["http"], timeout=2).read()

def httpx_library(input):
    import httpx
    return httpx.get(input["http"], timeout=2).text

ATTACKS = {n: f for n, f in dict(globals()).items() if callable(f) and not n.startswith("_")
           and getattr(f, "__module__", "") == __name__ and n != "run"}
"""
