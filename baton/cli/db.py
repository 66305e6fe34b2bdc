"""``baton db upgrade|downgrade|current|backup|restore|prune``."""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from baton import backup as backups
from baton import retention
from baton.dagster_home import write_default_instance_yaml
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
    p = db.add_parser("backup", help="dump Baton's tables and Dagster's storage into a new folder")
    p.add_argument("folder", type=Path, help="a folder that does not exist yet, or is empty")
    p.set_defaults(func=backup)
    p = db.add_parser(
        "restore",
        help="put a backup back into the configured stores (stop the deployment first)",
    )
    p.add_argument("folder", type=Path, help="a folder made by `baton db backup`")
    p.add_argument(
        "--replace",
        action="store_true",
        help="restore over stores that hold data (Postgres: emptied first; SQLite: the "
        "current files are moved aside to .before-restore-<time>)",
    )
    p.set_defaults(func=restore)
    p = db.add_parser(
        "prune",
        help="delete run trees that ended before a cutoff, with their rows, and old webhook rows",
    )
    p.add_argument(
        "--older-than",
        required=True,
        metavar="AGE",
        help="what ended (was received, created) longer ago than this goes: 12h, 30d, 2w",
    )
    p.add_argument(
        "--audit-older-than",
        default="365d",
        metavar="AGE",
        help="a run tree an operator acted on stays until its newest action is this old "
        "(default 365d)",
    )
    # "-1d" would otherwise be taken for an option and refused with a usage screen; as a
    # value it gets the one-line error naming --older-than. No option of prune looks like it.
    p._negative_number_matcher = re.compile(r"^-[0-9]+[a-z]*$")
    p.add_argument("--dry-run", action="store_true", help="print the counts, delete nothing")
    p.add_argument(
        "--dagster",
        action="store_true",
        help="also delete the Dagster runs (segments, event logs) of the pruned runs",
    )
    p.set_defaults(func=prune)


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


def _stores(restoring: backups.Manifest | None = None) -> list[backups.Store]:
    # Dagster's storage is read from DAGSTER_HOME's dagster.yaml without opening the
    # instance: opening it would create tables in the empty database a restore goes into.
    settings = get_settings()
    instance_yaml = settings.dagster_home / "dagster.yaml"
    if not instance_yaml.is_file() and restoring is not None and _is_sqlite(restoring):
        # A new data folder (a scratch restore, a new machine) has no dagster.yaml yet; a
        # backup of the embedded SQLite storage goes where a first start would put it.
        write_default_instance_yaml(settings.dagster_home)
        print(f"wrote the embedded default {instance_yaml} (Dagster on SQLite, as backed up)")
    if not instance_yaml.is_file():
        raise backups.BackupError(
            f"{instance_yaml}: no Dagster instance configured there "
            "(set BATON_DAGSTER__HOME or DAGSTER_HOME; `baton up` writes the default one, "
            "for Postgres copy deploy/dagster.postgres.yaml there)"
        )
    return [
        backups.baton_store(settings.db_url),
        backups.dagster_store(settings.dagster_home),
    ]


def _is_sqlite(manifest: backups.Manifest) -> bool:
    return any(e.store == "dagster" and e.kind == "sqlite" for e in manifest.entries)


def backup(args: argparse.Namespace) -> int:
    try:
        stores = _stores()
        revision = migrate.current_revision(get_settings().db_url)
        manifest = backups.backup(args.folder, stores, baton_revision=revision)
    except backups.BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for entry in manifest.entries:
        print(f"{entry.store}: {entry.source} -> {args.folder / entry.file}")
    print(f"backup of revision {manifest.baton_revision} in {args.folder}")
    return 0


def restore(args: argparse.Namespace) -> int:
    try:
        stores = _stores(restoring=backups.Manifest.read(args.folder))
        manifest = backups.restore(args.folder, stores, replace=args.replace)
    except backups.BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    # Where each store went now, not where it was backed up from (the manifest's source):
    # a restore into a scratch folder must not read as one over the live data.
    targets = {s.name: s.describe() for s in stores}
    for entry in manifest.entries:
        print(f"{entry.store}: {args.folder / entry.file} -> {targets[entry.store]}")
    url = get_settings().db_url
    now, head = migrate.current_revision(url), migrate.head_revision()
    after = "run `baton db upgrade`" if now != head else "up to date"
    print(f"restored the backup of {manifest.taken_at}: Baton's schema at {now} ({after})")
    return 0


def prune(args: argparse.Namespace) -> int:
    try:
        older = retention.parse_age(args.older_than, "--older-than")
        audit = retention.parse_age(args.audit_older_than, "--audit-older-than")
    except retention.RetentionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings = get_settings()
    from baton.library import prepare_database

    prepare_database(settings)
    now = datetime.now(UTC)
    assets_root = settings.assets_dir or settings.data_dir / "assets"
    if args.dagster:
        from dagster import DagsterInstance

        home = settings.dagster_home
        if not (home / "dagster.yaml").is_file():
            print(
                f"error: --dagster: {home / 'dagster.yaml'}: no Dagster instance configured "
                "there (set BATON_DAGSTER__HOME or DAGSTER_HOME)",
                file=sys.stderr,
            )
            return 1
        instance: Any = DagsterInstance.from_config(str(home))
    else:
        instance = contextlib.nullcontext(None)
    with instance as opened:
        report = retention.prune(
            settings.db_url,
            now - older,
            audit_cutoff=now - audit,
            dry_run=args.dry_run,
            instance=opened,
            assets_root=assets_root,
            now=now,
        )
    _print_prune(report)
    return 0


def _print_prune(report: retention.PruneReport) -> None:
    head = "dry run, nothing deleted; would delete" if report.dry_run else "deleted"
    print(f"{head}: what ended before {report.cutoff:%Y-%m-%d %H:%M:%S} UTC")
    rows = [("run trees", report.trees)]
    rows += [(table, report.counts[table]) for table in retention.TABLES]
    rows.append(("deliverable files", report.asset_files))
    if report.dagster_runs is not None:
        rows.append(("Dagster runs", report.dagster_runs))
    for name, count in rows:
        print(f"  {name:<31} {count:>8}")
    if report.dagster_runs is None:
        print("Dagster's runs of these runs remain (pass --dagster to delete them too)")
    elif report.dagster_unfinished:
        print(f"left {report.dagster_unfinished} Dagster runs that are not finished")
    if report.kept_unfinished:
        print(f"kept {report.kept_unfinished} run trees with a run not ended before the cutoff")
    if report.kept_audited:
        print(
            f"kept {report.kept_audited} run trees with an operator action since "
            f"{report.audit_cutoff:%Y-%m-%d} (--audit-older-than)"
        )
