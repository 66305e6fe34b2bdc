"""``baton up``: the whole deployment on the embedded default, in the foreground, supervised."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

from baton.cli.supervisor import Child, supervise
from baton.dagster_home import ensure_dagster_home
from baton.library import prepare_database, sync_library
from baton.settings import PACKAGE_ROOT, get_settings
from baton.warm_launcher import client as warm_client
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
    api_host = args.api_host or settings.api.host
    api_port = args.api_port or settings.api.port
    taken = _taken([("the Dagster UI", args.host, args.port), ("the API", api_host, api_port)])
    if taken:
        # A child that cannot bind would fail on every restart: say so once, before starting.
        for line in taken:
            print(f"error: {line}", file=sys.stderr)
        print(
            "choose free ports: baton up --port P --api-port Q (make up PORT=P API_PORT=Q)",
            file=sys.stderr,
        )
        return 1
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
    print(f"Baton: Dagster UI on http://{args.host}:{args.port}")
    print(f"Baton: API on http://{api_host}:{api_port} (docs at /docs)", flush=True)
    # Links (approval notices, the approvals page, `baton runs show`) follow the ports chosen
    # here unless they were set explicitly; the children inherit the environment.
    os.environ.setdefault("BATON_DAGSTER__UI_URL", f"http://{_link_host(args.host)}:{args.port}")
    os.environ.setdefault("BATON_PUBLIC_URL", f"http://{_link_host(api_host)}:{api_port}")
    children = _children(args, api_host, api_port)
    return supervise(children, cwd=PACKAGE_ROOT, on_stop=lambda: _stop_zygote(home))


def _children(args: argparse.Namespace, api_host: str, api_port: int) -> list[Child]:
    """The webserver, the daemon and the API as three children, so each restarts alone.

    Not `dagster dev`: it ends its webserver when its daemon dies, taking the UI down with it.
    """
    workspace = str(PACKAGE_ROOT / "workspace.yaml")
    bin_dir = os.path.dirname(sys.executable)
    webserver = [os.path.join(bin_dir, "dagster-webserver"), "-w", workspace]
    webserver += ["-h", args.host, "-p", str(args.port)]
    daemon = [os.path.join(bin_dir, "dagster-daemon"), "run", "-w", workspace]
    api = [sys.executable, "-m", "baton.cli.main", "api", "serve"]
    api += ["--host", api_host, "--port", str(api_port)]
    return [Child("webserver", webserver), Child("daemon", daemon), Child("api", api)]


def _stop_zygote(home: Path) -> None:
    # The warm launcher's zygote is detached from every child (it outlives a restarted daemon);
    # left alone it would idle on for up to a minute after `baton up` ended.
    if warm_client.stop(home):
        print("Baton: stopped the run-worker zygote", file=sys.stderr)


def _taken(wanted: list[tuple[str, str, int]]) -> list[str]:
    """Which of (what, host, port) cannot be bound now, each as a sentence."""
    problems = []
    for what, host, port in wanted:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                problems.append(f"{what} cannot listen on {host}:{port}: {exc.strerror}")
    if len({(h, p) for _, h, p in wanted}) < len(wanted):
        problems.append(f"the Dagster UI and the API are both given port {wanted[0][2]}")
    return problems


def _link_host(host: str) -> str:
    """A host for links: a wildcard bind address is reached through the loopback."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
