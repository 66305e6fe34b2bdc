"""Migration 0015 (step caching): the step_cache table and a step's cache column go up and down
on SQLite and Postgres, and a database created from the models is left as it is."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from baton.db import migrate
from baton.db.engine import get_engine


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


def _schema(url: str) -> tuple[bool, set[str], set[str]]:
    with get_engine(url).connect() as connection:
        inspector = inspect(connection)
        has = inspector.has_table("step_cache")
        indexes = {str(i["name"]) for i in inspector.get_indexes("step_cache")} if has else set()
        steps = {c["name"] for c in inspector.get_columns("orchestration_steps")}
        return has, indexes, steps


def test_upgrade_adds_the_table_its_indexes_and_the_column_and_downgrade_removes_them(
    url: str,
) -> None:
    migrate.upgrade(url, "0015")
    has, indexes, steps = _schema(url)
    assert has and "cache" in steps
    assert {"ix_step_cache_expires_at", "ix_step_cache_orchestration_step_id"} <= indexes

    migrate.downgrade(url, "0014")
    has, _, steps = _schema(url)
    assert not has and "cache" not in steps

    migrate.upgrade(url, "0015")  # and up again
    assert _schema(url)[0]
