"""Fixtures of the fault-injection tests: a library of small flows whose every agent call is a
POST to a local server that counts calls and idempotency keys, and Postgres for both stores
(Baton's tables and Dagster's storage, through dagster-postgres)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from baton.db import migrate
from baton.settings import PACKAGE_ROOT
from tests.conftest import PG_ADMIN_URL
from tests.helpers import write_library
from tests.orchestration_defs.calls_server import CallsServer
from tests.pg import create_database, drop_database

# Every agent step is the shipped `publisher` (an api agent): POST {BATON_PUBLISH_URL}/publish
# with an Idempotency-Key; its body is the step's `with:`, so the server tells steps apart.
FLOWS = {
    "fault-wait.yaml": """
        slug: fault-wait
        name: Fault wait
        version: 1
        steps:
          - id: draft
            agent: publisher
            with: {step: draft}
          - id: review
            needs: [draft]
            checkpoint:
              prompt: Go on?
              approvers: [editors]
          - id: publish
            needs: [review]
            agent: publisher
            with: {step: publish, after: "{{ steps.review.output.decided_by }}"}
        """,
    "fault-mid.yaml": """
        slug: fault-mid
        name: Fault mid-step
        version: 1
        steps:
          - id: work
            agent: publisher
            retry: {max_attempts: 2}
            with: {step: work}
        """,
}

# Short leases so a dead worker is noticed in seconds; the reaper ticks on every daemon loop.
FAST_REAPER = {
    "BATON_SENSORS__STEP_LEASE_SECONDS": "10",
    "BATON_SENSORS__HEARTBEAT_SECONDS": "1",
    "BATON_SENSORS__REAPER_INTERVAL_SECONDS": "4",
}


@pytest.fixture
def agent() -> Iterator[CallsServer]:
    """The agents' server: every call answers 200 unless a test scripts it otherwise."""
    with CallsServer().running() as server:
        yield server


@pytest.fixture
def library(tmp_path: Path) -> Path:
    return write_library(tmp_path / "library", FLOWS)


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new, empty database on the server of ``admin_url``; dropped afterwards."""
    url = create_database(admin_url, prefix="baton_fault")
    try:
        yield url
    finally:
        drop_database(admin_url, url)


@contextlib.contextmanager
def postgres_stores(admin_url: str) -> Iterator[tuple[str, str]]:
    """(Baton's database URL migrated to head, Dagster's database URL), both new."""
    with fresh_database(admin_url) as baton_url, fresh_database(admin_url) as dagster_url:
        migrate.upgrade(baton_url)
        yield baton_url, dagster_url


def write_dagster_yaml(home: Path, dagster_url: str | None) -> None:
    """The shipped dagster.yaml in ``home``, with Postgres storage when ``dagster_url``."""
    home.mkdir(parents=True, exist_ok=True)
    shipped = (PACKAGE_ROOT / "deploy" / "dagster.yaml").read_text()
    if dagster_url is not None:
        plain = dagster_url.replace("+psycopg2", "")
        shipped += f"\nstorage:\n  postgres:\n    postgres_url: {plain}\n"
    (home / "dagster.yaml").write_text(shipped)


def deployment_env(
    library: Path, agent: CallsServer, baton_url: str, dagster_url: str | None, **extra: str
) -> dict[str, str]:
    """The environment of a deployment whose stores are the given databases."""
    home = Path(os.environ["DAGSTER_HOME"])
    write_dagster_yaml(home, dagster_url)
    return {
        **os.environ,
        "BATON_DATABASE_URL": baton_url,
        "BATON_LIBRARY_DIR": str(library),
        "BATON_PUBLISH_URL": agent.url,
        "BATON_PUBLISH_KEY": "publish-key",
        **extra,
    }


@pytest.fixture
def pg_stores() -> Iterator[tuple[str, str]]:
    """Both stores on the shared Postgres server, in databases of their own."""
    with postgres_stores(PG_ADMIN_URL) as stores:
        yield stores


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    """Both stores on one backend: SQLite (Baton's file, Dagster's SQLite in DAGSTER_HOME:
    the embedded default of `make up`), or Postgres (databases of their own)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'baton-fault.db'}"
        migrate.upgrade(url)
        yield url, None
        return
    with postgres_stores(PG_ADMIN_URL) as pg:
        yield pg
