"""Alembic migrations on SQLite and Postgres: up, down, up again, and agreement with models."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from baton.cli.main import main
from baton.db import migrate
from baton.db.engine import get_engine
from baton.db.models import Base
from baton.settings import get_settings

BATON_TABLES = set(Base.metadata.tables)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest) -> str:
    """An empty database, once on SQLite and once on Postgres."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


def _tables(url: str) -> set[str]:
    with get_engine(url).connect() as connection:
        return set(inspect(connection).get_table_names())


def _schema_diff(url: str) -> list[object]:
    with get_engine(url).connect() as connection:
        context = MigrationContext.configure(
            connection,
            # Baton's revision lives in its own table, which is bookkeeping, not a model.
            opts={"compare_type": True, "version_table": migrate.VERSION_TABLE},
        )
        return list(compare_metadata(context, Base.metadata))


def test_the_models_cover_the_expected_tables() -> None:
    assert {
        "orchestration_definitions",
        "orchestration_runs",
        "orchestration_steps",
        "human_approvals",
        "orchestration_events",
    } <= BATON_TABLES


def test_upgrade_downgrade_upgrade(empty_url: str) -> None:
    assert migrate.current_revision(empty_url) is None
    assert not migrate.is_current(empty_url)

    migrate.upgrade(empty_url)
    assert _tables(empty_url) == BATON_TABLES | {migrate.VERSION_TABLE}
    assert migrate.current_revision(empty_url) == migrate.head_revision()
    assert migrate.is_current(empty_url)

    migrate.downgrade(empty_url, "base")
    assert _tables(empty_url) == {migrate.VERSION_TABLE}
    assert migrate.current_revision(empty_url) is None

    migrate.upgrade(empty_url)
    assert _tables(empty_url) == BATON_TABLES | {migrate.VERSION_TABLE}
    assert migrate.is_current(empty_url)
    assert _schema_diff(empty_url) == []


def test_each_revision_steps_up_and_down(empty_url: str) -> None:
    head = migrate.head_revision()
    migrate.upgrade(empty_url, "0001")
    assert migrate.current_revision(empty_url) == "0001"
    assert "orchestration_runs" in _tables(empty_url)
    if head != "0001":
        migrate.upgrade(empty_url, "head")
        assert migrate.current_revision(empty_url) == head
        migrate.downgrade(empty_url, "0001")
        assert migrate.current_revision(empty_url) == "0001"
    migrate.downgrade(empty_url, "-1")
    assert migrate.current_revision(empty_url) is None
    assert _tables(empty_url) == {migrate.VERSION_TABLE}


def test_models_and_migrations_agree(empty_url: str) -> None:
    migrate.upgrade(empty_url)
    assert _schema_diff(empty_url) == []


def test_upgrade_keeps_tables_created_from_the_models(empty_url: str) -> None:
    Base.metadata.create_all(get_engine(empty_url))
    assert migrate.current_revision(empty_url) is None

    migrate.upgrade(empty_url)

    assert migrate.is_current(empty_url)
    assert _tables(empty_url) == BATON_TABLES | {migrate.VERSION_TABLE}
    assert _schema_diff(empty_url) == []


def test_upgrade_creates_only_the_missing_tables(empty_url: str) -> None:
    engine = get_engine(empty_url)
    Base.metadata.tables["orchestration_definitions"].create(engine)

    migrate.upgrade(empty_url)

    assert _tables(empty_url) == BATON_TABLES | {migrate.VERSION_TABLE}
    assert _schema_diff(empty_url) == []


def test_cli_upgrade_current_downgrade(
    empty_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BATON_DATABASE_URL", empty_url)
    get_settings.cache_clear()
    head = migrate.head_revision()

    assert main(["db", "current"]) == 0
    assert "current: base (empty)" in capsys.readouterr().out

    assert main(["db", "upgrade"]) == 0
    assert f"current: {head}  head: {head}  (up to date)" in capsys.readouterr().out
    assert migrate.is_current(empty_url)

    assert main(["db", "current"]) == 0
    assert "(up to date)" in capsys.readouterr().out

    assert main(["db", "downgrade", "base"]) == 0
    out = capsys.readouterr().out
    assert "current: base (empty)" in out
    assert "(behind)" in out
    assert _tables(empty_url) == {migrate.VERSION_TABLE}
