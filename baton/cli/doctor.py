"""``baton doctor``: everything that waits on the system rather than on a person, and why."""

from __future__ import annotations

import argparse

from baton.cli.output import dumps
from baton.doctor import waiting_on_system
from baton.library import prepare_database
from baton.settings import get_settings
from baton.store.service import RunStore


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "doctor",
        help="list what waits on the system (claims not launched, runs not started, "
        "webhooks that started no run, invalid files, stored secrets no key decrypts); exit 1 "
        "if anything does",
    )
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=doctor)


def doctor(args: argparse.Namespace) -> int:
    settings = get_settings()
    prepare_database(settings)
    with RunStore(settings.db_url).session() as s:
        found = waiting_on_system(s)
    stuck = [w for w in found if w.stuck]
    if args.json:
        print(dumps({"waiting": [w.as_dict() for w in found]}))
        return 1 if stuck else 0
    if not found:
        print("nothing waits on the system")
        return 0
    print(f"{len(found)} thing(s) wait on the system, {len(stuck)} stuck:")
    for w in found:
        since = w.since.strftime("%Y-%m-%d %H:%M:%S") if w.since else "-"
        run = f" run {w.run_id}" if w.run_id and w.run_id != w.id else ""
        state = "stuck" if w.stuck else "progressing"
        print(f"  {w.kind:22} {w.id}{run}  since {since}  ({state})\n    {w.reason}")
    return 1 if stuck else 0
