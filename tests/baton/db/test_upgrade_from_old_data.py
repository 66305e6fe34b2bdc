"""Upgrade from the oldest schema that has runs waiting at a checkpoint, with data that code
wrote: ``fixtures/schema_0003`` holds Baton's tables as commit ee52416 (head 0003) left them
after one completed run and one run waiting for its approval (``make.py`` there made them).
After ``alembic upgrade head`` the runs, steps, events and the approval read back through
today's store, and a decision resumes the waiting run to the end on a real Dagster instance."""

from __future__ import annotations

import shutil
import sqlite3
import uuid
from pathlib import Path

import pytest
from dagster import DagsterInstance
from sqlalchemy import text
from sqlalchemy.engine import make_url

from agent_resources.resources import EchoAgentResource
from baton.approvals import Approvals
from baton.db import migrate
from baton.db.engine import get_engine
from baton.store.service import RunStore
from tests.checkpoint_helpers import launch, tick
from tests.helpers import compile_text

pytestmark = pytest.mark.slow

FIXTURE = Path(__file__).parent / "fixtures" / "schema_0003"
WAITING = uuid.UUID("975bfb62-3b10-4762-bcd7-70caf971a714")  # in sqlite.sql
DONE = uuid.UUID("6654890a-5d2e-438e-a35b-9cdc4b80e088")
PG_WAITING = uuid.UUID("f4e7bd2d-9f9e-43c2-87ce-af8ca490dbec")  # in postgres.sql
PG_DONE = uuid.UUID("b4a0d571-0666-479c-aad5-c8d1b6e27c7a")


def _load(url: str) -> tuple[uuid.UUID, uuid.UUID]:
    """The fixture's tables in the empty database at ``url``; (waiting run, completed run)."""
    if url.startswith("sqlite"):
        with sqlite3.connect(make_url(url).database or "") as conn:
            conn.executescript((FIXTURE / "sqlite.sql").read_text())
        return WAITING, DONE
    with get_engine(url).begin() as conn:
        conn.execute(text((FIXTURE / "postgres.sql").read_text()))
    get_engine(url).dispose()  # the dump emptied search_path on its connection
    return PG_WAITING, PG_DONE


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def old_db(request: pytest.FixtureRequest) -> tuple[str, uuid.UUID, uuid.UUID]:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    waiting, done = _load(url)
    assert migrate.current_revision(url) == "0003"
    return url, waiting, done


def test_old_runs_read_back_and_the_waiting_one_resumes_after_the_upgrade(
    old_db: tuple[str, uuid.UUID, uuid.UUID], dagster_sqlite_template: Path, tmp_path: Path
) -> None:
    url, waiting, done = old_db
    migrate.upgrade(url)
    assert migrate.current_revision(url) == migrate.head_revision()

    store = RunStore(url)
    assert store.get_run(done).status == "completed"
    detail = store.run_detail(waiting)
    assert detail.run.status == "awaiting_approval"
    assert {s.step_id: s.status for s in detail.steps} == {
        "draft": "completed",
        "review": "waiting",
        "publish": "pending",
    }
    assert "run.created" in [e.type for e in detail.events]
    [approval] = Approvals(store).find(run_id=waiting, status="pending")
    assert approval.prompt == "Publish kept?"

    # Today's code location registers the same file: the stored version is the one it runs.
    _, job = compile_text((FIXTURE / "content-check.yaml").read_text(), url)
    Approvals(store).decide(approval.id, user="ann", decision="continue")
    home = tmp_path / "dagster"
    shutil.copytree(dagster_sqlite_template, home)
    with DagsterInstance.from_config(str(home)) as instance:
        [request] = tick(instance, url, job)
        echo = {"agent_echo": EchoAgentResource(slug="echo")}
        assert launch(job, instance, url, request, resources=echo).success
    run = store.get_run(waiting)
    assert run.status == "completed"
    assert run.outputs == {"by": "ann"}
