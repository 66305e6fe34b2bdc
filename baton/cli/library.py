"""``baton library sync|problems``: store the library in Baton's tables, list invalid files.

``baton validate`` stays the strict check for editors and CI; these two are for the deployed
library, where an invalid file is left out (and recorded) instead of taking every job down.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from baton.cli.output import dumps, error
from baton.library import FileProblem, library_problems, prepare_database, sync_library
from baton.settings import get_settings
from baton.store.service import RunStore
from orchestration_defs.language.errors import SpecErrors


def add_parsers(sub: argparse._SubParsersAction) -> None:
    library = sub.add_parser(
        "library", help="store the library in Baton's tables; list invalid files"
    ).add_subparsers(dest="library_command", required=True)
    p = library.add_parser(
        "sync", help="parse the library folders and store every valid definition version"
    )
    p.set_defaults(func=sync)
    p = library.add_parser(
        "problems", help="the invalid files of the last sync; exit 1 if there are any"
    )
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=problems)


def sync(_args: argparse.Namespace) -> int:
    settings = get_settings()
    prepare_database(settings)
    try:
        synced = sync_library(settings)
    except (SpecErrors, RuntimeError) as exc:  # strict mode: nothing is left out silently
        error(f"the library has invalid definitions (BATON_STRICT_LIBRARY):\n{exc}")
        return 1
    print(f"{len(synced.newest)} orchestration(s) from {settings.library_dir}")
    if synced.problems:
        _print_problems(synced.problems, out=sys.stderr)
    return 0


def problems(args: argparse.Namespace) -> int:
    settings = get_settings()
    prepare_database(settings)
    found = library_problems(RunStore(settings.db_url))
    if args.json:
        print(dumps({"problems": [p.as_json() for p in found]}))
    elif found:
        _print_problems(found, out=sys.stdout)
    else:
        print("no invalid library files (as of the last sync)")
    return 1 if found else 0


def _print_problems(found: list[FileProblem], *, out: TextIO) -> None:
    print(f"{len(found)} invalid file(s) left out of the code location:", file=out)
    for problem in found:
        for line in problem.lines:
            print(f"  {line}", file=out)
