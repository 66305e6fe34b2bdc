"""Alembic environment: the URL comes from the config (set by baton.db.migrate) or settings."""

from __future__ import annotations

from alembic import context

from baton.db.engine import get_engine
from baton.db.models import Base
from baton.settings import get_settings

# Dagster's own storage keeps an `alembic_version` table; Baton's tables may share the same
# database (one Postgres for both), so Baton tracks its revision in a table of its own.
VERSION_TABLE = "baton_alembic_version"

config = context.config
url = config.get_main_option("sqlalchemy.url") or get_settings().db_url


def run_migrations_offline() -> None:
    context.configure(
        url=url,
        target_metadata=Base.metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
        version_table=VERSION_TABLE,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        with get_engine(url).connect() as connection:
            _run(connection)
    else:
        _run(connection)


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # Batch mode recreates a SQLite table to alter it (copy, drop, rename). With foreign
        # keys enforced, dropping the old table deletes every row that references it through
        # ON DELETE CASCADE: an upgrade emptied the steps, events and approvals of every run.
        # The pragma is a no-op inside a transaction, so it is set before Alembic's begins.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    try:
        _migrate(connection)
    finally:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
    if sqlite:
        _check_foreign_keys(connection)


def _check_foreign_keys(connection) -> None:  # type: ignore[no-untyped-def]
    """A migration that left a row pointing nowhere fails loudly instead of going unseen."""
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    connection.commit()
    if broken:
        raise RuntimeError(f"migration left rows whose foreign keys point nowhere: {broken[:5]}")


def _migrate(connection) -> None:  # type: ignore[no-untyped-def]
    # Batch mode lets ALTER work on SQLite, which recreates tables for most changes.
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        version_table=VERSION_TABLE,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
