"""The zygote: a process with Dagster and Baton imported that forks a run worker per run.

    python -m baton.warm_launcher.zygote --home DAGSTER_HOME [--preload MODULE ...]

It imports the preload modules (``pkg.*`` imports every submodule of ``pkg``), binds its
socket, then daemonizes: the started process exits once the socket listens (so whoever started
it knows it is ready and need not reap it) and the grandchild serves. It stays single-threaded
and opens no database or gRPC connection, so a fork is safe; each child opens its own.

Requests (one JSON line each): ``ping`` -> pid, digest; ``lease`` (the same, and the
connection stays open while the holder lives); ``launch`` (run id, instance ref,
environment, cwd, log path) -> the child's pid and start ticks; ``shutdown``. It exits on its
own when its socket file is replaced or the instance folder removed, and refuses a launch
(answers ``stale``, then exits) when the source files it imported changed since it started.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import pkgutil
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from baton.warm_launcher import protocol

log = logging.getLogger("baton.zygote")

DEFAULT_PRELOAD = (
    "dagster",
    "dagster._cli.api",
    "dagster._core.execution.api",
    "dagster._core.storage.runs.sqlite.sqlite_run_storage",
    "dagster._core.storage.event_log.sqlite.sqlite_event_log",
    "dagster._core.storage.event_log.sqlite.consolidated_sqlite_event_log",
    "dagster._core.storage.schedules.sqlite.sqlite_schedule_storage",
    "dagster_postgres",
    "sqlalchemy",
    "pydantic",
    "baton.*",
    "agent_resources.*",
    "orchestration_defs.language.*",
    "orchestration_defs.compiler.*",
    "sensors.*",
)
_CHECK_SECONDS = 2.0


def preload(names: Sequence[str]) -> list[Path]:
    """Import ``names``; return the source folders of the packages imported (for the digest)."""
    roots: set[Path] = set()
    for name in names:
        walk = name.endswith(".*")
        for module_name in _expand(name.removesuffix(".*"), walk=walk):
            try:
                importlib.import_module(module_name)
            except Exception as exc:
                log.info("not preloaded: %s (%s)", module_name, type(exc).__name__)
                continue
            top = sys.modules.get(module_name.split(".")[0])
            if top is not None and getattr(top, "__file__", None) and not _in_site(top):
                roots.add(Path(str(top.__file__)).parent)
    return sorted(roots)


def _in_site(module: Any) -> bool:
    # Installed libraries change only with a reinstall; only the project's sources are watched.
    return "site-packages" in str(getattr(module, "__file__", ""))


def _expand(base: str, *, walk: bool) -> list[str]:
    if not walk:
        return [base]
    try:
        package = importlib.import_module(base)
    except Exception:
        return [base]
    paths = getattr(package, "__path__", None)
    if paths is None:
        return [base]
    found = [base]
    for info in pkgutil.walk_packages(paths, prefix=f"{base}.", onerror=lambda _name: None):
        if ".tests" in info.name or info.name.endswith("__main__") or ".zygote" in info.name:
            continue
        found.append(info.name)
    return found


class Zygote:
    """Serves one listening socket; forks a run worker per launch request.

    Long-lived launchers (daemon, webserver, API) hold a *lease*: a connection left open for
    their lifetime. With no lease and no live worker for ``idle_exit`` seconds the zygote
    exits, so stopping the deployment (or a CLI launch ending) leaves no process behind.
    """

    def __init__(
        self, listener: socket.socket, path: Path, roots: list[Path], home: Path, idle_exit: float
    ) -> None:
        self.listener = listener
        self.path = path
        self.home = home
        self.roots = roots
        self.idle_exit = idle_exit
        self.digest = protocol.source_digest(roots)
        self.inode = path.stat().st_ino
        self.started = time.time()
        self.last_active = time.monotonic()
        self.children: set[int] = set()
        self.leases: list[socket.socket] = []
        self.answering: socket.socket | None = None
        self.running = True

    def serve(self) -> None:
        signal.signal(signal.SIGCHLD, lambda *_: self.reap())
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        last_check = time.monotonic()
        while self.running:
            ready, _, _ = select.select([self.listener, *self.leases], [], [], _CHECK_SECONDS)
            for sock in ready:
                if sock is self.listener:
                    self.accept()
                else:
                    self.drop_lease_if_closed(sock)
            self.reap()
            if time.monotonic() - last_check >= _CHECK_SECONDS:
                last_check = time.monotonic()
                self.running = self.still_wanted()
        if self.socket_is_mine():
            self.path.unlink(missing_ok=True)
        self.listener.close()

    def still_wanted(self) -> bool:
        if not (self.socket_is_mine() and self.home.is_dir()):
            log.info("socket %s or its instance folder is gone; exiting", self.path)
            return False
        if self.leases or self.children:
            self.last_active = time.monotonic()
            return True
        if self.idle_exit > 0 and time.monotonic() - self.last_active >= self.idle_exit:
            log.info("no lease and no run worker for %.0f s; exiting", self.idle_exit)
            return False
        return True

    def stop(self) -> None:
        self.running = False

    def socket_is_mine(self) -> bool:
        try:
            return self.path.stat().st_ino == self.inode
        except OSError:
            return False

    def reap(self) -> None:
        """Collect every ended child, so none stays a zombie."""
        while True:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            self.children.discard(pid)

    def drop_lease_if_closed(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(4096)
        except OSError:
            data = b""
        if not data:  # the holder exited or let go
            self.leases.remove(sock)
            sock.close()

    def accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        keep = False
        self.answering = conn
        try:
            conn.settimeout(10)
            request = protocol.receive(conn)
            protocol.send(conn, self.handle(request))
            keep = request.get("op") == "lease"
        except (OSError, ValueError) as exc:
            log.warning("bad request: %s", type(exc).__name__)
        finally:
            self.answering = None
        if keep:
            conn.setblocking(False)
            self.leases.append(conn)
        else:
            conn.close()

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op in ("ping", "lease"):
            return {"ok": True, "pid": os.getpid(), "digest": self.digest, "started": self.started}
        if op == "shutdown":
            self.running = False
            return {"ok": True}
        if op == "launch":
            if protocol.source_digest(self.roots) != self.digest:
                self.running = False
                return {"ok": False, "stale": True, "error": "source files changed"}
            return self.launch(request)
        return {"ok": False, "error": f"unknown op {op!r}"}

    def launch(self, request: dict[str, Any]) -> dict[str, Any]:
        for key in ("run_id", "instance_ref", "log_path"):
            if not isinstance(request.get(key), str):
                return {"ok": False, "error": f"missing {key}"}
        self.last_active = time.monotonic()  # pings do not count: they only look
        pid = os.fork()
        if pid == 0:
            self.close_inherited()
            from baton.warm_launcher.worker import run_forked

            run_forked(request)
        self.children.add(pid)
        return {"ok": True, "pid": pid, "start": protocol.process_start_ticks(pid)}

    def close_inherited(self) -> None:
        """In a fresh worker: the zygote's sockets are not its to hold (a lease kept open by
        a worker would keep the zygote alive after its holder died)."""
        self.listener.close()
        if self.answering is not None:
            self.answering.close()
        for sock in self.leases:
            sock.close()


def bind(path: Path) -> socket.socket:
    """Listen on ``path``, replacing a stale socket file (the caller holds the start lock)."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    old_umask = os.umask(0o177)
    try:
        listener.bind(str(path))
    finally:
        os.umask(old_umask)
    listener.listen(64)
    return listener


def _daemonize() -> None:
    """Leave the starter: it waits for our exit to know the socket listens, and need not
    reap us; the serving grandchild belongs to init from then on."""
    if os.fork() > 0:
        os._exit(0)
    os.setsid()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="baton-zygote")
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--preload", nargs="*", default=list(DEFAULT_PRELOAD))
    parser.add_argument("--idle-exit-seconds", type=float, default=60.0)
    parser.add_argument("--foreground", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s zygote[%(process)d] %(levelname)s %(message)s"
    )
    roots = preload(args.preload)
    if threading.active_count() > 1:
        # A thread would not survive the fork and could hold a lock the child then needs.
        log.warning("threads running after preload: %s", threading.enumerate())
    path = protocol.socket_path(args.home)
    listener = bind(path)
    if not args.foreground:
        _daemonize()
    log.info("serving %s (preloaded %d modules)", path, len(sys.modules))
    Zygote(listener, path, roots, args.home, args.idle_exit_seconds).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
