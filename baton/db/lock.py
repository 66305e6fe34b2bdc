"""One process at a time migrates Baton's tables: a lock that lives with the database.

Postgres: a session-level advisory lock, so processes on any machine that share the database
queue behind each other. SQLite: ``flock`` on ``<database file>.lock`` beside the file, which
covers every process that can open the file. In-memory SQLite has one process by definition.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from baton.db.engine import get_engine
from baton.filelock import file_lock

log = logging.getLogger(__name__)

# Any fixed 64-bit key; advisory locks are per database, so it only has to be Baton's own.
ADVISORY_KEY = 0x6261746F6E  # "baton"
PURPOSE = "migrating Baton's tables"


@contextmanager
def migration_lock(url: str) -> Iterator[None]:
    """Hold Baton's migration lock for the database at ``url`` during the block."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        with _advisory_lock(url):
            yield
    elif backend == "sqlite" and parsed.database not in (None, "", ":memory:"):
        with file_lock(Path(f"{parsed.database}.lock"), purpose=PURPOSE):
            yield
    else:
        yield


@contextmanager
def _advisory_lock(url: str) -> Iterator[None]:
    # A connection of its own: the lock belongs to this session, not to the migration's
    # transaction, and the server frees it if the process dies.
    with get_engine(url).connect() as connection:
        got = connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_KEY})
        if not got.scalar():
            log.info("waiting for another process to finish %s", PURPOSE)
            connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": ADVISORY_KEY})
        connection.commit()  # not left idle in a transaction while the migration runs
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_KEY})
            connection.commit()
