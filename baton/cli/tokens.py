"""``baton tokens create|list|revoke``: bearer tokens of the HTTP API."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from baton.cli.output import dumps, error
from baton.db.engine import session_scope
from baton.db.models import API_ROLES
from baton.library import prepare_database
from baton.settings import get_settings
from baton.store.tokens import TokensRepository
from baton.store.users import UsersRepository


def add_parsers(sub: argparse._SubParsersAction) -> None:
    tokens = sub.add_parser("tokens", help="API tokens").add_subparsers(
        dest="tokens_command", required=True
    )
    p = tokens.add_parser("create", help="create a token for a user; it is printed once")
    p.add_argument("--user", required=True, help="the user (see `baton users add`)")
    p.add_argument("--role", required=True, choices=API_ROLES)
    p.add_argument("--name", default="", help="a label, e.g. what the token is for")
    p.add_argument("--org", default="global", help="the user's organization (default global)")
    p.set_defaults(func=create_token)
    p = tokens.add_parser("list", help="tokens (never their values)")
    p.add_argument("--org", help="only this organization's")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=list_tokens)
    p = tokens.add_parser("revoke", help="revoke a token by its id")
    p.add_argument("token_id", type=int, metavar="ID")
    p.set_defaults(func=revoke_token)


def _url() -> str:
    settings = get_settings()
    prepare_database(settings)
    return settings.db_url


def create_token(args: argparse.Namespace) -> int:
    with session_scope(_url()) as s:
        user = UsersRepository(s).get(args.org, args.user)
        if user is None:
            error(
                f"no user '{args.user}' in organization '{args.org}'; "
                f"add one with `baton users add {args.user} --org {args.org}`"
            )
            return 1
        row, raw = TokensRepository(s).create(user, role=args.role, name=args.name)
        token_id = row.id
    # The token alone on stdout, so `TOKEN=$(baton tokens create ...)` keeps just it; the
    # notice goes to the terminal.
    print(raw, flush=True)
    print(
        f"token {token_id} for {args.user} ({args.org}, {args.role}); "
        "it is shown only now: store it somewhere safe",
        file=sys.stderr,
        flush=True,
    )
    return 0


def list_tokens(args: argparse.Namespace) -> int:
    with session_scope(_url()) as s:
        rows: list[dict[str, Any]] = [
            {
                "id": t.id,
                "prefix": t.prefix,
                "name": t.name,
                "user": u.name,
                "organization": u.organization,
                "role": t.role,
                "created_at": t.created_at,
                "last_used_at": t.last_used_at,
                "revoked_at": t.revoked_at,
            }
            for t, u in TokensRepository(s).list(args.org)
        ]
    if args.json:
        print(dumps(rows))
        return 0
    print(f"{'ID':>5}  {'PREFIX':10}  {'USER':16}  {'ORG':12}  {'ROLE':8}  {'STATE':8}  NAME")
    for r in rows:
        state = "revoked" if r["revoked_at"] else "live"
        print(
            f"{r['id']:>5}  {r['prefix']:10}  {r['user'][:16]:16}  {r['organization'][:12]:12}  "
            f"{r['role']:8}  {state:8}  {r['name']}"
        )
    return 0


def revoke_token(args: argparse.Namespace) -> int:
    with session_scope(_url()) as s:
        revoked = TokensRepository(s).revoke(args.token_id)
    if not revoked:
        error(f"no live token {args.token_id}")
        return 1
    print(f"token {args.token_id} revoked")
    return 0
