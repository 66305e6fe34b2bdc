"""``baton webhooks ...``: inbound sources and their secrets, outbound subscriptions.

Secrets are printed once, when created or rotated; they are stored encrypted.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
import uuid
from datetime import timedelta

from baton.cli.output import dumps, error
from baton.library import prepare_database
from baton.settings import Settings, get_settings
from baton.webhooks.crypto import SecretKeyError
from baton.webhooks.delivery import deliveries
from baton.webhooks.inbox import Inbox
from baton.webhooks.sources import SourceError, Sources
from baton.webhooks.subscriptions import SubscriptionError, Subscriptions

_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> timedelta:
    """``90``, ``90s``, ``30m``, ``24h`` or ``7d`` as a timedelta (argparse type)."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"expected a duration like 30m, 24h or 7d (seconds if no unit), got {text!r}"
        )
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def add_parsers(sub: argparse._SubParsersAction) -> None:
    hooks = sub.add_parser("webhooks", help="webhook sources and subscriptions").add_subparsers(
        dest="webhooks_command", required=True
    )
    p = hooks.add_parser("add-source", help="a new inbound source; its secret is printed once")
    p.add_argument("name", help="the source's name: POST /webhooks/NAME")
    p.add_argument("--org", required=True, help="the organization whose runs it may start")
    p.set_defaults(func=add_source)
    p = hooks.add_parser("rotate-secret", help="a new secret; the old one stays valid a while")
    p.add_argument("name")
    p.add_argument("--grace", type=duration, default=timedelta(hours=24), help="default 24h")
    p.set_defaults(func=rotate_secret)
    p = hooks.add_parser("list-sources", help="inbound sources (never their secrets)")
    p.add_argument("--org", help="only this organization's")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=list_sources)
    p = hooks.add_parser("remove-source", help="delete a source (its inbox rows stay)")
    p.add_argument("name")
    p.set_defaults(func=remove_source)
    p = hooks.add_parser("inbox", help="the newest received webhooks")
    p.add_argument("--source")
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(func=show_inbox)
    p = hooks.add_parser("subscribe", help="send events to a URL; its secret is printed once")
    p.add_argument("--org", required=True)
    p.add_argument("--url", required=True)
    p.add_argument(
        "--events", required=True, help="comma-separated: run.completed,approval.requested,..."
    )
    p.set_defaults(func=subscribe)
    p = hooks.add_parser("unsubscribe", help="stop a subscription (pending deliveries fail)")
    p.add_argument("subscription_id", type=uuid.UUID, metavar="ID")
    p.set_defaults(func=unsubscribe)
    p = hooks.add_parser("list-subscriptions", help="outbound subscriptions")
    p.add_argument("--org")
    p.add_argument("--all", action="store_true", help="include ended ones")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=list_subscriptions)
    p = hooks.add_parser("deliveries", help="outbound deliveries and their attempts")
    p.add_argument("--subscription", type=uuid.UUID)
    p.set_defaults(func=list_deliveries)


def _settings() -> Settings:
    settings = get_settings()
    prepare_database(settings)
    return settings


def add_source(args: argparse.Namespace) -> int:
    settings = _settings()
    try:
        secret = Sources(settings.db_url, settings).add(args.name, args.org)
    except (SourceError, SecretKeyError) as exc:
        error(str(exc))
        return 1
    # The secret alone on stdout, so `SECRET=$(baton webhooks add-source ...)` keeps just it;
    # the notice goes to the terminal (as `baton tokens create` does).
    print(secret, flush=True)
    print(
        f"source '{args.name}' ({args.org}): POST {settings.public_url}/webhooks/{args.name}; "
        "the secret is shown only now: store it somewhere safe",
        file=sys.stderr,
        flush=True,
    )
    return 0


def rotate_secret(args: argparse.Namespace) -> int:
    settings = _settings()
    try:
        secret = Sources(settings.db_url, settings).rotate(args.name, args.grace)
    except (SourceError, SecretKeyError) as exc:
        error(str(exc))
        return 1
    print(secret, flush=True)
    print(f"the previous secret stays valid for {args.grace}", file=sys.stderr, flush=True)
    return 0


def list_sources(args: argparse.Namespace) -> int:
    settings = _settings()
    sources = Sources(settings.db_url, settings).list(args.org)
    if args.json:
        print(dumps([dataclasses.asdict(s) for s in sources]))
        return 0
    print(f"{'NAME':24}  {'ORG':16}  {'CREATED':25}  ROTATED")
    for s in sources:
        rotated = s.rotated_at.isoformat() if s.rotated_at else "-"
        print(f"{s.name:24}  {s.organization:16}  {s.created_at.isoformat():25}  {rotated}")
    return 0


def remove_source(args: argparse.Namespace) -> int:
    settings = _settings()
    try:
        Sources(settings.db_url, settings).remove(args.name)
    except SourceError as exc:
        error(str(exc))
        return 1
    print(f"source '{args.name}' removed")
    return 0


def show_inbox(args: argparse.Namespace) -> int:
    items = Inbox(_settings().db_url).list(source=args.source, limit=args.limit)
    print(
        dumps(
            [
                {
                    "id": i.id,
                    "source": i.source,
                    "organization": i.organization,
                    "webhook_id": i.webhook_id,
                    "status": i.status,
                    "received_at": i.received_at,
                    # The run keys requested, why none was, or what it waits for.
                    "result": i.result,
                }
                for i in items
            ]
        )
    )
    return 0


def subscribe(args: argparse.Namespace) -> int:
    settings = _settings()
    events = [e for e in args.events.split(",") if e.strip()]
    try:
        sub_id, secret = Subscriptions(settings.db_url, settings).subscribe(
            organization=args.org, url=args.url, events=events
        )
    except (SubscriptionError, SecretKeyError) as exc:
        error(str(exc))
        return 1
    print(secret, flush=True)
    print(
        f"subscription {sub_id} ({args.org}) -> {args.url}; verify deliveries with the secret "
        "above, shown only now",
        file=sys.stderr,
        flush=True,
    )
    return 0


def unsubscribe(args: argparse.Namespace) -> int:
    settings = _settings()
    try:
        cancelled = Subscriptions(settings.db_url, settings).unsubscribe(args.subscription_id)
    except SubscriptionError as exc:
        error(str(exc))
        return 1
    print(f"subscription {args.subscription_id} ended; {cancelled} pending deliveries dropped")
    return 0


def list_subscriptions(args: argparse.Namespace) -> int:
    settings = _settings()
    subs = Subscriptions(settings.db_url, settings).list(args.org, include_disabled=args.all)
    if args.json:
        print(dumps([dataclasses.asdict(s) for s in subs]))
        return 0
    for s in subs:
        state = "ended" if s.disabled_at else "active"
        print(f"{s.id}  {s.organization:16}  {state:6}  {s.url}  {','.join(s.event_types)}")
    return 0


def list_deliveries(args: argparse.Namespace) -> int:
    rows = deliveries(_settings().db_url, args.subscription)
    print(
        dumps(
            [
                {
                    "id": d.id,
                    "subscription_id": str(d.subscription_id),
                    "event_type": d.event_type,
                    "webhook_id": d.webhook_id,
                    "status": d.status,
                    "attempts": d.attempts,
                    "next_attempt_at": d.next_attempt_at,
                    "last_status_code": d.last_status_code,
                    "last_error": d.last_error,
                }
                for d in rows
            ]
        )
    )
    return 0
