"""``baton up``: the whole deployment on the embedded default, in the foreground."""

from __future__ import annotations

import argparse
import os
import sys

from baton.dagster_home import ensure_dagster_home
from baton.library import load_and_register, prepare_database
from baton.settings import PACKAGE_ROOT, get_settings
from orchestration_defs.language.errors import SpecErrors


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("up", help="start the Dagster webserver and daemon with the library")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3000)
    p.set_defaults(func=up)


def up(args: argparse.Namespace) -> int:
    settings = get_settings()
    home = ensure_dagster_home(settings)
    prepare_database(settings)
    try:
        jobs = load_and_register(settings)
    except SpecErrors as exc:
        print(f"error: the library has invalid definitions:\n{exc}", file=sys.stderr)
        return 1
    print(f"Baton: {len(jobs)} orchestration(s) from {settings.library_dir}")
    print(f"Baton: data in {settings.data_dir}, DAGSTER_HOME={home}")
    print(f"Baton: Dagster UI on http://{args.host}:{args.port}")
    workspace = PACKAGE_ROOT / "workspace.yaml"
    dagster = os.path.join(os.path.dirname(sys.executable), "dagster")
    argv = [dagster, "dev", "-w", str(workspace), "-h", args.host, "-p", str(args.port)]
    os.chdir(PACKAGE_ROOT)
    os.execv(dagster, argv)  # replaces this process: Ctrl-C stops everything
