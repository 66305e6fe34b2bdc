"""Migrations under a lock: several real processes migrating a fresh database at once all
succeed, on SQLite and Postgres, and the lock excludes other holders while held."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from agent_resources.catalog import agent_catalog
from baton.db import migrate
from baton.db.engine import get_engine
from baton.db.lock import ADVISORY_KEY, migration_lock
from baton.db.models import AgentRecord

PROCESSES = 4


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest) -> str:
    """An empty database, once on SQLite and once on Postgres."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


def _start_all(args: list[str], url: str) -> list[subprocess.Popen[str]]:
    env = {**os.environ, "BATON_DATABASE_URL": url}
    command = [sys.executable, "-m", "baton.cli.main", *args]
    return [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(PROCESSES)
    ]


def _finish(procs: list[subprocess.Popen[str]]) -> list[tuple[int, str]]:
    # A guard against a hang, not a speed check.
    return [(p.wait(timeout=300), p.stdout.read() if p.stdout else "") for p in procs]


def test_processes_migrating_and_seeding_a_fresh_database_at_once_all_succeed(
    empty_url: str,
) -> None:
    results = _finish(_start_all(["agents", "seed"], empty_url))
    assert [code for code, _ in results] == [0] * PROCESSES, results
    assert migrate.is_current(empty_url)
    with get_engine(empty_url).connect() as connection:
        stored = connection.execute(select(func.count()).select_from(AgentRecord)).scalar()
    assert stored == len(agent_catalog())


def test_processes_upgrading_at_once_all_succeed(empty_url: str) -> None:
    results = _finish(_start_all(["db", "upgrade"], empty_url))
    assert [code for code, _ in results] == [0] * PROCESSES, results
    assert migrate.current_revision(empty_url) == migrate.head_revision()


def test_sqlite_lock_is_a_file_beside_the_database(sqlite_url: str) -> None:
    lock = Path(f"{make_url(sqlite_url).database}.lock")
    with migration_lock(sqlite_url), lock.open("a+b") as other, pytest.raises(BlockingIOError):
        fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    with lock.open("a+b") as other:
        fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again


@pytest.mark.postgres
def test_postgres_lock_is_an_advisory_lock_of_the_database(pg_url: str) -> None:
    def try_lock() -> bool:
        with get_engine(pg_url).connect() as other:
            query = text("SELECT pg_try_advisory_lock(:k)")
            got = bool(other.execute(query, {"k": ADVISORY_KEY}).scalar())
            if got:
                other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_KEY})
            return got

    with migration_lock(pg_url):
        assert not try_lock()
    assert try_lock()


def test_in_memory_sqlite_needs_no_lock() -> None:
    with migration_lock("sqlite://"):
        pass
