"""Shared fixtures: isolated settings, migrated databases on SQLite and on Postgres.

Postgres tests use the server at 127.0.0.1:5432 (override with BATON_TEST_PG_URL). Outside
CI they are skipped when it is unreachable; in CI (CI=true) a missing server fails them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance, instance_for_test
from dagster._core.definitions.definitions_load_context import DefinitionsLoadContext
from sqlalchemy.engine import make_url

from baton.db import migrate
from baton.db.engine import get_engine
from baton.settings import get_settings
from tests.pg import IN_CI as IN_CI  # re-exported: tests import it from here
from tests.pg import create_database, drop_database

PG_ADMIN_URL = os.environ.get(
    "BATON_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own data folder and DAGSTER_HOME; settings are re-read."""
    data = tmp_path / "baton-data"
    monkeypatch.setenv("BATON_DATA_DIR", str(data))
    monkeypatch.delenv("BATON_DATABASE_URL", raising=False)
    monkeypatch.delenv("BATON_LIBRARY_DIR", raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(data / "dagster"))
    # No code server or zygote started behind an API test's back; e2e tests opt back in.
    monkeypatch.setenv("BATON_API__PREWARM", "false")
    get_settings.cache_clear()
    # Dagster keeps the definitions' load context in a class variable: a test that re-executes
    # a reconstructable job in-process leaves it at RECONSTRUCTION, and every later
    # build_definitions() in that worker then builds a run worker's lazy repository.
    load_context = DefinitionsLoadContext._instance
    yield data
    DefinitionsLoadContext._instance = load_context
    get_settings.cache_clear()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """An empty SQLite database file."""
    return f"sqlite:///{tmp_path / 'baton-test.db'}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head by ``alembic upgrade head``, once per test process."""
    path = tmp_path_factory.mktemp("template") / "baton-template.db"
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    get_engine(url).dispose()  # closed, so the file holds every page (no WAL left behind)
    return path


@pytest.fixture
def sqlite_db(sqlite_url: str, sqlite_template: Path) -> str:
    """A SQLite database at head: a copy of the migrated template (a migration per test
    costs about 0.5 s; tests/baton/db migrates empty and old schemas themselves)."""
    shutil.copyfile(sqlite_template, make_url(sqlite_url).database or "")
    return sqlite_url


def _create_database(template: str | None = None) -> str:
    return create_database(PG_ADMIN_URL, prefix="baton_test", template=template)


def _drop_database(url: str) -> None:
    drop_database(PG_ADMIN_URL, url)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty Postgres database, dropped afterwards."""
    url = _create_database()
    try:
        yield url
    finally:
        _drop_database(url)


def _dagster_storage(url: str) -> dict[str, Any]:
    """Instance overrides putting Dagster's storage in the database at ``url``."""
    return {"storage": {"postgres": {"postgres_url": url.replace("+psycopg2", "")}}}


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A Postgres database migrated to head by ``alembic upgrade head``, once per test
    process; ``pg_db`` copies it. Created on first use, so SQLite-only runs never touch Postgres."""
    url = _create_database()
    try:
        migrate.upgrade(url)
        # Dagster's storage schema too: an instance on a database that has it starts in
        # about 0.1 s instead of 1.4 s (dagster-postgres creates and stamps its tables).
        with instance_for_test(overrides=_dagster_storage(url)):
            pass
        get_engine(url).dispose()  # CREATE DATABASE ... TEMPLATE needs it unconnected
        get_engine.cache_clear()
        yield make_url(url).database or ""
    finally:
        _drop_database(url)


@pytest.fixture
def pg_db(pg_template: str) -> Iterator[str]:
    """A Postgres database at head (a copy of the migrated template), dropped afterwards."""
    url = _create_database(template=pg_template)
    try:
        yield url
    finally:
        _drop_database(url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """A migrated database, once on SQLite and once on Postgres."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_db")
    return request.getfixturevalue("pg_db")


@pytest.fixture(scope="session")
def dagster_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Dagster home whose SQLite storages exist, made once per test process: a test instance
    on a copy starts in about 0.1 s instead of 1.1 s (Dagster creates and stamps them)."""
    home = tmp_path_factory.mktemp("dagster-template")
    with instance_for_test(temp_dir=str(home)) as instance:
        instance.get_runs(limit=1)
    return home


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def dagster_instance(request: pytest.FixtureRequest) -> Iterator[DagsterInstance]:
    """A real Dagster instance: SQLite in a temp DAGSTER_HOME, or Postgres via dagster-postgres.

    Baton's own tables follow the same backend, so each parameter is a consistent deployment.
    """
    if request.param == "sqlite":
        url = request.getfixturevalue("sqlite_db")
        home = request.getfixturevalue("tmp_path") / "dagster-instance"
        shutil.copytree(request.getfixturevalue("dagster_sqlite_template"), home)
        with instance_for_test(temp_dir=str(home)) as instance:
            instance.baton_db_url = url  # type: ignore[attr-defined]
            yield instance
        return
    url = request.getfixturevalue("pg_db")
    with instance_for_test(overrides=_dagster_storage(url)) as instance:
        instance.baton_db_url = url  # type: ignore[attr-defined]
        yield instance
