"""`baton db backup` and `baton db restore` of both stores, on Postgres and on SQLite: dump,
drop, restore, then runs and approvals are readable and a waiting run still resumes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from agent_resources.resources import EchoAgentResource
from baton.approvals import Approvals
from baton.db import migrate
from baton.db.engine import get_engine
from baton.settings import get_settings
from baton.store.service import RunStore
from tests.checkpoint_helpers import launch, pending, start, tick, users
from tests.conftest import PG_ADMIN_URL
from tests.helpers import compile_text, execute
from tests.pg import create_database, drop_database

pytestmark = pytest.mark.slow

REVIEW = """
slug: backed-up
name: Backed up
version: 1
steps:
  - id: draft
    agent: echo
    with: {title: kept}
  - id: review
    checkpoint:
      prompt: "Publish {{ steps.draft.output.title }}?"
      approvers: [editors]
  - id: publish
    agent: echo
    with: {post: "{{ steps.draft.output.title }}", by: "{{ steps.review.output.decided_by }}"}
outputs:
  by: "{{ steps.publish.output.by }}"
"""

DONE = """
slug: done-before
name: Done before
version: 1
steps:
  - id: only
    agent: echo
    with: {text: finished}
"""


class Stores:
    """Baton's database URL and a DAGSTER_HOME, both stores on one backend."""

    def __init__(self, baton_url: str, home: Path, recreate: object) -> None:
        self.baton_url, self.home, self.recreate = baton_url, home, recreate

    def instance(self) -> DagsterInstance:
        return DagsterInstance.from_config(str(self.home))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stores(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Stores]:
    home = tmp_path / "dagster-home"
    home.mkdir()
    if request.param == "sqlite":
        baton_url = f"sqlite:///{tmp_path / 'baton.db'}"
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        made: list[str] = []
    else:
        baton_url = create_database(PG_ADMIN_URL, prefix="baton_backup")
        dagster_url = create_database(PG_ADMIN_URL, prefix="baton_backup_dagster")
        libpq = dagster_url.replace("+psycopg2", "")
        (home / "dagster.yaml").write_text(
            f"telemetry:\n  enabled: false\nstorage:\n  postgres:\n    postgres_url: {libpq}\n"
        )
        made = [baton_url, dagster_url]
    monkeypatch.setenv("BATON_DATABASE_URL", baton_url)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    get_settings.cache_clear()
    migrate.upgrade(baton_url)

    def drop_all() -> None:
        """What a lost server leaves: no database (Postgres) or no files (SQLite)."""
        if made:
            for url in made:
                drop_database(PG_ADMIN_URL, url)
            return
        Path(tmp_path / "baton.db").unlink()
        for path in home.rglob("*.db"):
            path.unlink()

    try:
        yield Stores(baton_url, home, drop_all)
    finally:
        for url in made:
            drop_database(PG_ADMIN_URL, url)


def _cli(*args: str) -> int:
    from baton.cli.main import main

    return main(["db", *args])


def test_dump_drop_restore_keeps_runs_approvals_and_a_waiting_run_resumes(
    stores: Stores, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = stores.baton_url
    users(url, ("ann", ["editors"]))
    _, job = compile_text(REVIEW, url)
    _, done_job = compile_text(DONE, url)
    with stores.instance() as instance:
        assert execute(done_job, instance, url).success
        waiting = start(job, instance, url)
        dagster_runs = sorted(r.run_id for r in instance.get_runs())
    approval = pending(url, waiting)
    backup = tmp_path / "backup"

    assert _cli("backup", str(backup)) == 0
    out = capsys.readouterr().out
    assert "baton: " in out and "dagster: " in out
    assert (backup / "manifest.json").is_file()
    stores.recreate()  # type: ignore[operator]
    assert _cli("restore", str(backup)) == 0
    assert "up to date" in capsys.readouterr().out

    store = RunStore(url)
    assert store.get_run(waiting).status == "awaiting_approval"
    assert {r.status for r in store.list_runs(limit=10)} == {"completed", "awaiting_approval"}
    assert pending(url, waiting).id == approval.id
    with stores.instance() as instance:
        assert sorted(r.run_id for r in instance.get_runs()) == dagster_runs
        assert all(r.status == DagsterRunStatus.SUCCESS for r in instance.get_runs())
        Approvals(store).decide(approval.id, user="ann", decision="continue")
        [request] = tick(instance, url, job)
        echo = {"agent_echo": EchoAgentResource(slug="echo")}
        assert launch(job, instance, url, request, resources=echo).success
    run = store.get_run(waiting)
    assert run.status == "completed"
    assert run.outputs == {"by": "ann"}


def test_a_restore_over_stores_holding_data_needs_replace_and_keeps_the_old_copy(
    stores: Stores, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = stores.baton_url
    _, done_job = compile_text(DONE, url)
    with stores.instance() as instance:
        assert execute(done_job, instance, url).success
    backup = tmp_path / "backup"
    assert _cli("backup", str(backup)) == 0
    with stores.instance() as instance:
        assert execute(done_job, instance, url).success  # after the backup: two runs now
    capsys.readouterr()

    assert _cli("restore", str(backup)) == 1
    assert "hold data already" in capsys.readouterr().err
    assert len(RunStore(url).list_runs(limit=10)) == 2  # nothing touched
    assert _cli("backup", str(backup)) == 1  # never over an existing backup
    assert "not empty" in capsys.readouterr().err

    assert _cli("restore", str(backup), "--replace") == 0
    # A restore is done with the deployment stopped: the processes that read after it are new.
    get_engine(url).dispose()
    get_engine.cache_clear()
    assert len(RunStore(url).list_runs(limit=10)) == 1
    with stores.instance() as instance:
        assert len(instance.get_runs()) == 1
    if url.startswith("sqlite"):
        assert list(tmp_path.glob("baton.db.before-restore-*")), "the replaced file is kept"


def test_a_folder_that_is_no_backup_is_refused_with_the_reason(
    stores: Stores, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "nothing").mkdir()
    assert _cli("restore", str(tmp_path / "nothing")) == 1
    assert "no manifest" in capsys.readouterr().err


def test_a_restore_into_a_new_data_folder_writes_the_default_instance_and_names_the_new_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The embedded default, backed up, then restored as docs/production.md asks now and then:
    # into a scratch data folder that nothing has started in (so no dagster.yaml yet).
    live, scratch = tmp_path / "live", tmp_path / "scratch"
    monkeypatch.setenv("BATON_DATA_DIR", str(live))
    monkeypatch.delenv("BATON_DATABASE_URL", raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(live / "dagster"))
    get_settings.cache_clear()
    url = get_settings().db_url
    migrate.upgrade(url)
    (live / "dagster").mkdir(parents=True)
    (live / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    _, done_job = compile_text(DONE, url)
    with DagsterInstance.from_config(str(live / "dagster")) as instance:
        assert execute(done_job, instance, url).success
    assert _cli("backup", str(tmp_path / "backup")) == 0

    monkeypatch.setenv("BATON_DATA_DIR", str(scratch))
    monkeypatch.delenv("DAGSTER_HOME")
    get_settings.cache_clear()
    capsys.readouterr()
    assert _cli("restore", str(tmp_path / "backup")) == 0
    out = capsys.readouterr().out
    assert f"wrote the embedded default {scratch / 'dagster' / 'dagster.yaml'}" in out
    assert f"-> sqlite sqlite:///{scratch / 'baton.db'}" in out
    assert f"-> sqlite {scratch / 'dagster'}" in out
    assert str(live) not in out.replace(str(tmp_path / "backup"), "")  # the live data untouched
    assert len(RunStore(get_settings().db_url).list_runs(limit=10)) == 1
    with DagsterInstance.from_config(str(scratch / "dagster")) as instance:
        assert len(instance.get_runs()) == 1
