"""``baton cache list|invalidate``: the step cache (steps with ``cache: {ttl: ...}``)."""

from __future__ import annotations

import argparse

from baton.cli.output import dumps, error
from baton.library import prepare_database
from baton.settings import get_settings
from baton.store.cache import CacheFilter
from baton.store.service import RunStore


def add_parsers(sub: argparse._SubParsersAction) -> None:
    cache = sub.add_parser("cache", help="the step cache").add_subparsers(
        dest="cache_command", required=True
    )
    p = cache.add_parser("list", help="stored answers, newest first (never their outputs)")
    _filters(p)
    p.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=list_entries)
    p = cache.add_parser(
        "invalidate", help="delete stored answers: the next call of those steps calls the agent"
    )
    _filters(p)
    p.add_argument("--all", action="store_true", help="every entry (no filter needed)")
    p.set_defaults(func=invalidate)


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--org", help="only this organization's entries")
    p.add_argument("--agent", help="only entries of this agent")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--step", metavar="ORCH:STEP", help="only entries written by this step")
    which.add_argument("--orchestration", help="only entries written by this orchestration")
    p.add_argument("--expired", action="store_true", help="only entries past their ttl")


def _filter(args: argparse.Namespace) -> CacheFilter | None:
    """The filter the options ask for; None (after an error) if ``--step`` is malformed."""
    orchestration, step_id = args.orchestration, None
    if args.step is not None:
        orchestration, _, step_id = args.step.partition(":")
        if not orchestration or not step_id:
            error(
                f"--step: expected ORCHESTRATION:STEP (e.g. content-review:draft), "
                f"got {args.step!r}"
            )
            return None
    return CacheFilter(
        organization=args.org,
        agent=args.agent,
        orchestration=orchestration,
        step_id=step_id,
        expired_only=args.expired,
    )


def _store() -> RunStore:
    settings = get_settings()
    prepare_database(settings)
    return RunStore(settings.db_url)


def list_entries(args: argparse.Namespace) -> int:
    which = _filter(args)
    if which is None:
        return 2
    entries = _store().cache.entries(which, limit=args.limit)
    if args.json:
        print(dumps([vars(e) for e in entries]))
        return 0
    print(f"{'CREATED':20}  {'EXPIRES':20}  {'ORG':12}  {'AGENT':20}  {'STEP':30}  ID")
    for e in entries:
        step = f"{e.orchestration}:{e.step_id}"
        print(
            f"{e.created_at:%Y-%m-%d %H:%M:%S}   {e.expires_at:%Y-%m-%d %H:%M:%S}   "
            f"{e.organization[:12]:12}  {e.agent[:20]:20}  {step[:30]:30}  {e.id}"
        )
    return 0


def invalidate(args: argparse.Namespace) -> int:
    which = _filter(args)
    if which is None:
        return 2
    if which == CacheFilter() and not args.all:
        error(
            "say what to invalidate: --agent, --step ORCH:STEP, --orchestration, --org or "
            "--expired, or --all for every entry"
        )
        return 2
    removed = _store().cache.invalidate(which)
    print(f"removed {removed} cache {'entry' if removed == 1 else 'entries'}")
    return 0
