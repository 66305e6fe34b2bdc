"""``baton db upgrade|downgrade|current``."""

from __future__ import annotations

import argparse

from baton.db import migrate
from baton.settings import get_settings


def add_parsers(sub: argparse._SubParsersAction) -> None:
    db = sub.add_parser("db", help="migrate Baton's tables").add_subparsers(
        dest="db_command", required=True
    )
    p = db.add_parser("upgrade", help="migrate up (default: to the newest revision)")
    p.add_argument("revision", nargs="?", default="head")
    p.set_defaults(func=upgrade)
    p = db.add_parser("downgrade", help="migrate down (default: one revision; 'base' empties)")
    p.add_argument("revision", nargs="?", default="-1")
    p.set_defaults(func=downgrade)
    p = db.add_parser("current", help="print the database's revision and the newest one")
    p.set_defaults(func=current)


def upgrade(args: argparse.Namespace) -> int:
    migrate.upgrade(get_settings().db_url, args.revision)
    return current(args)


def downgrade(args: argparse.Namespace) -> int:
    migrate.downgrade(get_settings().db_url, args.revision)
    return current(args)


def current(_args: argparse.Namespace) -> int:
    url = get_settings().db_url
    now, head = migrate.current_revision(url), migrate.head_revision()
    state = "up to date" if now == head else "behind"
    print(f"current: {now or 'base (empty)'}  head: {head}  ({state})")
    return 0
