"""Throwaway Postgres databases for tests: created on an admin connection, dropped after.

Outside CI a server that cannot be reached skips the test; in CI (CI=true) it fails it.
"""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool

from baton.db.engine import get_engine

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _admin(admin_url: str) -> Engine:
    # No pool: a connection opened before an outage of this server must not be reused after.
    return create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)


def create_database(admin_url: str, *, prefix: str, template: str | None = None) -> str:
    """A new database on the server of ``admin_url`` (a copy of ``template`` if given); its
    URL. Skips the test (fails it in CI) when the server is unreachable."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    clause = f' TEMPLATE "{template}"' if template else ""
    admin = _admin(admin_url)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"{clause}'))
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"Postgres is required in CI but unreachable at {admin_url}: {exc}")
        pytest.skip(f"Postgres unreachable at {admin_url}: {exc}")
    finally:
        admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, url: str) -> None:
    """Drop the database of ``url`` (its connections closed first, by force if need be)."""
    get_engine(url).dispose()
    get_engine.cache_clear()
    admin = _admin(admin_url)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    finally:
        admin.dispose()
