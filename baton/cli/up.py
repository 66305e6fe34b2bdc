"""``baton up``: the whole deployment on the embedded default, in the foreground."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from baton.dagster_home import ensure_dagster_home
from baton.library import prepare_database, sync_library
from baton.settings import PACKAGE_ROOT, get_settings
from orchestration_defs.language.errors import SpecErrors


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("up", help="start the Dagster webserver and daemon, and the HTTP API")
    p.add_argument("--host", default="127.0.0.1", help="interface of the Dagster UI")
    p.add_argument("--port", type=int, default=3000, help="port of the Dagster UI")
    p.add_argument("--api-host", help="interface of the API (default BATON_API__HOST)")
    p.add_argument("--api-port", type=int, help="port of the API (default BATON_API__PORT)")
    p.set_defaults(func=up)


def up(args: argparse.Namespace) -> int:
    settings = get_settings()
    home = ensure_dagster_home(settings)
    prepare_database(settings)
    try:
        synced = sync_library(settings)
    except (SpecErrors, RuntimeError) as exc:  # BATON_STRICT_LIBRARY: refuse, as before
        print(f"error: the library has invalid definitions:\n{exc}", file=sys.stderr)
        return 1
    print(f"Baton: {len(synced.newest)} orchestration(s) from {settings.library_dir}")
    for problem in synced.problems:  # left out, not fatal: `baton library problems` lists them
        print(f"Baton: warning: invalid, left out: {problem.path}", file=sys.stderr)
        for line in problem.lines:
            print(f"  {line}", file=sys.stderr)
    print(f"Baton: data in {settings.data_dir}, DAGSTER_HOME={home}")
    api_host = args.api_host or settings.api.host
    api_port = args.api_port or settings.api.port
    print(f"Baton: Dagster UI on http://{args.host}:{args.port}")
    print(f"Baton: API on http://{api_host}:{api_port} (docs at /docs)", flush=True)
    # Links (approval notices, the approvals page, `baton runs show`) follow the ports chosen
    # here unless they were set explicitly; the children inherit the environment.
    os.environ.setdefault("BATON_DAGSTER__UI_URL", f"http://{_link_host(args.host)}:{args.port}")
    os.environ.setdefault("BATON_PUBLIC_URL", f"http://{_link_host(api_host)}:{api_port}")
    workspace = PACKAGE_ROOT / "workspace.yaml"
    dagster = os.path.join(os.path.dirname(sys.executable), "dagster")
    dagster_argv = [dagster, "dev", "-w", str(workspace), "-h", args.host, "-p", str(args.port)]
    api_argv = [sys.executable, "-m", "baton.cli.main", "api", "serve"]
    api_argv += ["--host", api_host, "--port", str(api_port)]
    return supervise([dagster_argv, api_argv], cwd=PACKAGE_ROOT)


def _link_host(host: str) -> str:
    """A host for links: a wildcard bind address is reached through the loopback."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def supervise(commands: Sequence[list[str]], *, cwd: Path, grace: float = 20) -> int:
    """Run ``commands`` as children until one exits or this process is told to stop.

    SIGINT or SIGTERM stops every child the way Ctrl-C does (SIGINT: `dagster dev` shuts its
    webserver and daemon down only then); whatever is left after ``grace`` seconds is killed
    with its own children. A child that exits on its own takes the others down too, and its
    exit code is returned.
    """
    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    # Handlers first: a handled signal is reset to its default in a child, while an ignored
    # one (SIGINT of a background job) would stay ignored and dagster dev could not stop.
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    # Each child leads its own process group, so a stuck one can be killed with everything
    # it started (dagster dev's webserver, daemon and code servers) and nothing is orphaned.
    procs = [subprocess.Popen(argv, cwd=cwd, start_new_session=True) for argv in commands]
    names = {proc.pid: Path(argv[0]).name for proc, argv in zip(procs, commands, strict=True)}
    try:
        code = 0
        while not stopping:
            ended = [p for p in procs if p.poll() is not None]
            if ended:
                code = ended[0].returncode or 0
                print(f"Baton: {names[ended[0].pid]} exited ({code}); stopping all")
                break
            time.sleep(0.3)
        _terminate(procs, grace)
        return 0 if stopping else code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _terminate(procs: Sequence[subprocess.Popen[bytes]], grace: float) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        # Whatever the child left behind in its group (a code server slow to notice) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
