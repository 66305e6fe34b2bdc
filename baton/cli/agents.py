"""``baton agents list`` and ``baton agents seed``."""

from __future__ import annotations

import argparse
import os

from agent_resources.catalog import AgentEntry, agent_catalog
from baton.cli.output import dumps
from baton.library import prepare_database, seed_catalog
from baton.settings import get_settings
from baton.store.service import RunStore


def add_parsers(sub: argparse._SubParsersAction) -> None:
    agents = sub.add_parser("agents", help="the agent catalog").add_subparsers(
        dest="agents_command", required=True
    )
    p = agents.add_parser("list", help="agents with their type and env var status")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=list_agents)
    p = agents.add_parser("seed", help="store the catalog in the database (idempotent)")
    p.set_defaults(func=seed_agents)


def env_status(entry: AgentEntry) -> list[dict[str, object]]:
    """Each declared variable: set or not, required or not. Values are never shown."""
    return [
        {
            "name": v.name,
            "required": v.required,
            "secret": v.is_secret,
            "set": bool(os.environ.get(v.name)),
        }
        for v in entry.env
    ]


def _status(entry: AgentEntry) -> str:
    missing = entry.missing_env()
    return "ready" if not missing else "missing " + ", ".join(missing)


def list_agents(args: argparse.Namespace) -> int:
    entries = sorted(agent_catalog().values(), key=lambda e: e.slug)
    if args.json:
        print(
            dumps(
                [
                    {
                        "slug": e.slug,
                        "type": e.type,
                        "description": e.description,
                        "status": _status(e),
                        "env": env_status(e),
                    }
                    for e in entries
                ]
            )
        )
        return 0
    print(f"{'AGENT':24}  {'TYPE':12}  {'STATUS':28}  ENV")
    for e in entries:
        env = ", ".join(
            f"{v['name']}={'set' if v['set'] else 'unset'}{'' if not v['required'] else '*'}"
            for v in env_status(e)
        )
        print(f"{e.slug:24}  {e.type:12}  {_status(e):28}  {env or '-'}")
    print("(* required)")
    return 0


def seed_agents(_args: argparse.Namespace) -> int:
    settings = get_settings()
    prepare_database(settings)
    changed = seed_catalog(RunStore(settings.db_url))
    print(f"{len(agent_catalog())} agent(s) in the catalog, {changed} stored or updated")
    return 0
