"""Run Alembic from code, so ``baton db ...`` works from any folder."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from baton.db.engine import get_engine
from baton.db.lock import migration_lock

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent.parent / "migrations"
# Not `alembic_version`: Dagster's storage uses that name when it shares the database.
VERSION_TABLE = "baton_alembic_version"


class SchemaNotCurrent(RuntimeError):
    """Baton's tables are not at the code's newest revision and may not be migrated here."""


def alembic_config(url: str) -> Config:
    """An Alembic config pointed at Baton's migrations and ``url``."""
    config = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser treats % as interpolation; a password may contain one.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` up to ``revision``.

    Under the migration lock: of processes starting at once on a fresh database, one migrates
    and the others then find it at ``revision`` (Alembic reads the revision after the lock).
    """
    get_engine(url)  # creates the SQLite folder if needed
    with migration_lock(url):
        command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "-1") -> None:
    """Migrate the database at ``url`` down to ``revision`` (``base`` empties it)."""
    with migration_lock(url):
        command.downgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with get_engine(url).connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def head_revision() -> str | None:
    """The newest revision shipped with this code."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def is_known(revision: str) -> bool:
    """Whether ``revision`` is one of this code's migrations (not one a newer code made)."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    try:
        return script.get_revision(revision) is not None
    except CommandError:  # Alembic's answer to a revision it cannot locate
        return False


def is_current(url: str) -> bool:
    """Whether the database at ``url`` is at the newest revision."""
    return current_revision(url) == head_revision()
