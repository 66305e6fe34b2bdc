"""Fixtures for running compiled jobs on a real Dagster instance (SQLite or Postgres)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dagster import DagsterInstance, instance_for_test


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def dagster_instance(request: pytest.FixtureRequest) -> Iterator[DagsterInstance]:
    """A real Dagster instance: SQLite in a temp DAGSTER_HOME, or Postgres via dagster-postgres.

    Baton's own tables follow the same backend, so each parameter is a consistent deployment.
    """
    if request.param == "sqlite":
        url = request.getfixturevalue("sqlite_db")
        with instance_for_test() as instance:
            instance.baton_db_url = url  # type: ignore[attr-defined]
            yield instance
        return
    url = request.getfixturevalue("pg_db")
    overrides = {"storage": {"postgres": {"postgres_url": url.replace("+psycopg2", "")}}}
    with instance_for_test(overrides=overrides) as instance:
        instance.baton_db_url = url  # type: ignore[attr-defined]
        yield instance
