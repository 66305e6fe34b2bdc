"""Backup and restore of both stores: Baton's tables and Dagster's run storage.

A backup is a folder: one dump per store (``pg_dump --format=custom`` for Postgres, SQLite's
online backup API for SQLite files) and ``manifest.json`` naming what each file holds and the
revision of Baton's schema it was taken at. A restore puts each store back where the current
configuration points (the database is created if missing and cleaned first); Baton's tables
are then migrated forward by ``baton db upgrade`` (or on the next load, ``BATON_AUTO_MIGRATE``).

Passwords go to ``pg_dump``/``pg_restore`` through ``PGPASSWORD``, never on their command line
(``ps`` shows that to every user) nor into the manifest.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

MANIFEST = "manifest.json"


class BackupError(Exception):
    """A backup or restore that cannot be done, with what to fix."""


@dataclass(frozen=True)
class Store:
    """One store to back up: Baton's tables or Dagster's storage, on Postgres or SQLite.

    ``location`` is a SQLAlchemy URL (Postgres, or a SQLite file) or, for Dagster on SQLite,
    its storage folder (many ``.db`` files: runs, schedules, one event log per run).
    """

    name: str
    kind: str
    location: str

    def describe(self) -> str:
        """Where it is, without a password."""
        if self.kind == "postgres":
            url = make_url(self.location)
            return f"postgres {url.host}:{url.port or 5432}/{url.database}"
        return f"sqlite {self.location}"


@dataclass(frozen=True)
class Entry:
    """One store's file in a backup."""

    store: str
    kind: str
    file: str
    source: str


@dataclass(frozen=True)
class Manifest:
    """What a backup folder holds."""

    taken_at: str
    baton_revision: str | None
    entries: list[Entry]

    def write(self, folder: Path) -> None:
        body = {**asdict(self), "entries": [asdict(e) for e in self.entries]}
        (folder / MANIFEST).write_text(json.dumps(body, indent=2) + "\n")

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        path = folder / MANIFEST
        if not path.is_file():
            raise BackupError(
                f"{path}: no manifest; is {folder} a folder made by `baton db backup`?"
            )
        try:
            body = json.loads(path.read_text())
            entries = [Entry(**e) for e in body["entries"]]
            return cls(body["taken_at"], body.get("baton_revision"), entries)
        except (ValueError, KeyError, TypeError) as exc:
            raise BackupError(f"{path}: not a backup manifest ({exc})") from None


def baton_store(db_url: str) -> Store:
    """Baton's tables at ``db_url``."""
    url = make_url(db_url)
    if url.get_backend_name() == "postgresql":
        return Store("baton", "postgres", db_url)
    if url.get_backend_name() == "sqlite" and url.database:
        return Store("baton", "sqlite", db_url)
    raise BackupError(f"Baton's database {url.get_backend_name()} is not one this backs up")


def dagster_store(home: Path) -> Store:
    """The storage of the Dagster instance in ``home`` (its ``dagster.yaml``), read from the
    configuration without opening the instance (which would create tables in an empty
    database to restore into): its Postgres database, or the SQLite files under ``home``."""
    from dagster._config import process_config
    from dagster._core.instance.ref import InstanceRef
    from dagster._serdes.config_class import class_from_code_pointer

    ref = InstanceRef.from_dir(str(home))
    parts = [ref.run_storage_data, ref.event_storage_data, ref.schedule_storage_data]
    if not all(p is not None and p.module_name.startswith("dagster_postgres") for p in parts):
        return Store("dagster", "sqlite", str(home))
    from dagster_postgres.utils import pg_url_from_config

    urls = set()
    for part in parts:
        assert part is not None
        klass: Any = class_from_code_pointer(part.module_name, part.class_name)
        config = process_config(klass.config_type(), part.config_dict)
        if not config.success or config.value is None:
            raise BackupError(f"{home / 'dagster.yaml'}: {part.class_name}: {config.errors}")
        urls.add(pg_url_from_config(config.value))
    if len(urls) != 1:
        raise BackupError(
            "Dagster's run, event log and schedule storage are in different Postgres "
            "databases; back them up with pg_dump one by one"
        )
    return Store("dagster", "postgres", urls.pop())


def backup(folder: Path, stores: list[Store], *, baton_revision: str | None) -> Manifest:
    """Dump every store into ``folder`` (created; it must be empty) and write its manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        raise BackupError(f"{folder} is not empty; back up into a new folder")
    entries = [_dump(store, folder) for store in stores]
    manifest = Manifest(datetime.now(UTC).isoformat(), baton_revision, entries)
    manifest.write(folder)
    return manifest


def restore(folder: Path, stores: list[Store], *, replace: bool = False) -> Manifest:
    """Put each store of the backup in ``folder`` back where ``stores`` point now.

    A store that holds data already is refused unless ``replace``: then a Postgres database
    is emptied first (its ``public`` schema dropped) and SQLite files are moved aside to
    ``.before-restore-<time>`` next to them, so nothing is lost by mistake.
    """
    manifest = Manifest.read(folder)
    targets = {s.name: s for s in stores}
    for entry in manifest.entries:
        target = targets.get(entry.store)
        if target is None:
            raise BackupError(f"the backup holds '{entry.store}', which is not configured here")
        if target.kind != entry.kind:
            raise BackupError(
                f"the backup of '{entry.store}' is {entry.kind}; this deployment's is "
                f"{target.kind} ({target.describe()})"
            )
    states = {e.store: _state(targets[e.store]) for e in manifest.entries}
    full = [targets[name] for name, (_, rows) in states.items() if rows]
    if full and not replace:
        named = "; ".join(t.describe() for t in full)
        raise BackupError(
            f"these stores hold data already: {named}. Restore into empty ones, or pass "
            "--replace (Postgres: emptied first; SQLite: the files are moved aside)"
        )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for entry in manifest.entries:
        target = targets[entry.store]
        if states[entry.store][0]:  # an empty schema (a first start made it) goes too
            _clear(target, stamp)
        _load(entry, target, folder)
    return manifest


# Postgres ----------------------------------------------------------------------------------


def _pg_env(url: URL) -> dict[str, str]:
    env = {**os.environ, "PGHOST": url.host or "127.0.0.1", "PGPORT": str(url.port or 5432)}
    if url.username:
        env["PGUSER"] = url.username
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    return env


def _pg_run(args: list[str], url: URL) -> None:
    tool = shutil.which(args[0])
    if tool is None:
        raise BackupError(f"{args[0]} is not on PATH; install the PostgreSQL client tools")
    done = subprocess.run(
        [tool, *args[1:]], env=_pg_env(url), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise BackupError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


def _ensure_database(url: URL) -> None:
    """Create the database of ``url`` if it is missing (from the server's ``postgres``)."""
    admin = create_engine(
        url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool
    )
    try:
        with admin.connect() as conn:
            found = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": url.database}
            ).scalar()
            if not found:
                conn.execute(text(f'CREATE DATABASE "{url.database}"'))
    finally:
        admin.dispose()


# The table whose rows tell a store holds data (not just an empty schema).
KEY_TABLES = {"baton": "orchestration_runs", "dagster": "runs"}


def _pg_state(url: URL, key_table: str) -> tuple[bool, bool]:
    """(has tables, has rows in ``key_table``) of the database of ``url``; a database that
    does not exist has neither."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            tables = set(
                conn.execute(
                    text(
                        "SELECT table_name FROM information_schema.tables WHERE table_schema "
                        "NOT IN ('pg_catalog', 'information_schema')"
                    )
                ).scalars()
            )
            rows = key_table in tables and bool(
                conn.execute(text(f'SELECT 1 FROM "{key_table}" LIMIT 1')).first()
            )
            return bool(tables), rows
    except Exception as exc:
        if f'"{url.database}" does not exist' in str(exc):
            return False, False
        raise
    finally:
        engine.dispose()


def _pg_clear(url: URL) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


# SQLite ------------------------------------------------------------------------------------


def _sqlite_files(store: Store) -> Iterator[tuple[Path, str]]:
    """(path, name in the backup) of each SQLite file of ``store``."""
    if store.name == "baton":
        path = Path(make_url(store.location).database or "")
        yield path, "baton.db"
        return
    root = Path(store.location)
    for path in sorted(root.rglob("*.db")):
        yield path, str(Path("dagster-storage") / path.relative_to(root))


def _sqlite_copy(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite file (SQLite's online backup API)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def _state(store: Store) -> tuple[bool, bool]:
    """(has tables, holds data) of ``store``."""
    key = KEY_TABLES[store.name]
    if store.kind == "postgres":
        return _pg_state(make_url(store.location), key)
    tables = rows = False
    for path, _ in _sqlite_files(store):
        if not path.is_file() or path.stat().st_size == 0:
            continue
        with sqlite3.connect(path) as conn:
            names = {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            tables = tables or bool(names)
            if key in names and conn.execute(f'SELECT 1 FROM "{key}" LIMIT 1').fetchone():
                rows = True
    return tables, rows


def _clear(store: Store, stamp: str) -> None:
    """Empty ``store`` before a restore replaces it (SQLite files are moved, not deleted)."""
    if store.kind == "postgres":
        _pg_clear(make_url(store.location))
        return
    for path, _ in list(_sqlite_files(store)):
        aside = Path(f"{path}.before-restore-{stamp}")
        path.rename(aside)
        for suffix in ("-wal", "-shm"):
            extra = Path(f"{path}{suffix}")
            if extra.exists():
                extra.rename(Path(f"{aside}{suffix}"))


# both --------------------------------------------------------------------------------------


def _dump(store: Store, folder: Path) -> Entry:
    if store.kind == "postgres":
        url = make_url(store.location)
        name = f"{store.name}.dump"
        _pg_run(
            [
                "pg_dump",
                "--format=custom",
                "--no-owner",
                "--no-privileges",
                f"--file={folder / name}",
                f"--dbname={url.database}",
            ],
            url,
        )
        return Entry(store.name, store.kind, name, store.describe())
    files = list(_sqlite_files(store))
    for path, name in files:
        if not path.is_file():
            raise BackupError(f"{path}: no such SQLite file ({store.name})")
        _sqlite_copy(path, folder / name)
    first = "baton.db" if store.name == "baton" else "dagster-storage"
    return Entry(store.name, store.kind, first, store.describe())


def _load(entry: Entry, target: Store, folder: Path) -> None:
    source = folder / entry.file
    if not source.exists():
        raise BackupError(f"{source}: missing from the backup")
    if target.kind == "postgres":
        url = make_url(target.location)
        _ensure_database(url)
        _pg_run(
            [
                "pg_restore",
                "--no-owner",
                "--no-privileges",
                "--single-transaction",
                f"--dbname={url.database}",
                str(source),
            ],
            url,
        )
        return
    if target.name == "baton":
        _sqlite_copy(source, Path(make_url(target.location).database or ""))
        return
    root = Path(target.location)
    for path in sorted(source.rglob("*.db")):
        _sqlite_copy(path, root / path.relative_to(source))
