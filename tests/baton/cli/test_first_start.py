"""Several first `baton run`s at once on a fresh data folder all succeed: Baton's migrations,
the catalog seeding, the library sync and Dagster's own storage are each created once.

Real processes, a real Dagster instance and real databases: SQLite in the data folder, and a
fresh Postgres database holding both Baton's tables and Dagster's storage (dagster-postgres,
the shipped deploy/dagster.postgres.yaml).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest
from dagster import DagsterInstance, DagsterRunStatus
from sqlalchemy.engine import make_url

from agent_resources.catalog import agent_catalog
from baton.db.engine import session_scope
from baton.settings import PACKAGE_ROOT, get_settings
from baton.store.agents import AgentsRepository
from baton.warm_launcher import client

pytestmark = pytest.mark.slow

PROCESSES = 4


def _postgres_env(url: str) -> dict[str, str]:
    """The environment of a deployment whose Baton tables and Dagster storage share ``url``."""
    parsed = make_url(url)
    return {
        "BATON_DATABASE_URL": url,
        "DAGSTER_PG_HOST": parsed.host or "127.0.0.1",
        "DAGSTER_PG_PORT": str(parsed.port or 5432),
        "DAGSTER_PG_USER": parsed.username or "postgres",
        "DAGSTER_PG_PASSWORD": parsed.password or "",
        "DAGSTER_PG_DB": parsed.database or "",
    }


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def deployment(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """The environment of a fresh deployment; its run-worker zygote is stopped afterwards."""
    home = get_settings().dagster_home
    env = dict(os.environ)
    if request.param == "postgres":
        extra = _postgres_env(request.getfixturevalue("pg_url"))
        env.update(extra)
        for key, value in extra.items():
            monkeypatch.setenv(key, value)
        home.mkdir(parents=True)
        shutil.copyfile(PACKAGE_ROOT / "deploy" / "dagster.postgres.yaml", home / "dagster.yaml")
        get_settings.cache_clear()
    assert not (home / "history").exists()
    try:
        yield env
    finally:
        client.stop(home)


def test_first_runs_started_at_once_all_complete(deployment: dict[str, str]) -> None:
    command = [sys.executable, "-m", "baton.cli.main", "run", "hello", "-i", "name=Ada"]
    procs = [
        subprocess.Popen(
            [*command, "--wait", "--json"],
            env=deployment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    # communicate(timeout=...) guards against a hang; it is not a speed check.
    results = [(p.wait(timeout=600), *p.communicate(timeout=60)) for p in procs]
    assert [code for code, _, _ in results] == [0] * PROCESSES, results

    bodies = [json.loads(out) for _, out, _ in results]
    assert {b["status"] for b in bodies} == {"completed"}
    with session_scope(get_settings().db_url) as s:
        assert len(AgentsRepository(s).list()) == len(agent_catalog())
    with DagsterInstance.get() as instance:
        for body in bodies:
            dagster_run = instance.get_run_by_id(body["dagster_run_id"])
            assert dagster_run is not None
            assert dagster_run.status == DagsterRunStatus.SUCCESS
