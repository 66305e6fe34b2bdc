"""``baton db prune`` and baton.retention on real databases (SQLite and Postgres) and a real
Dagster instance: old ended run trees go with all their rows, anything unfinished (or recent,
or audited lately) stays whole, a dry run changes nothing and reports the same counts."""

from __future__ import annotations

import contextlib
import io
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance, DagsterRunStatus, job, op
from sqlalchemy import func, select

from baton.cli.main import main
from baton.db.engine import session_scope
from baton.db.models import (
    ApprovalVote,
    Base,
    Deliverable,
    HumanApproval,
    OperatorAction,
    OrchestrationDefinition,
    OrchestrationEvent,
    OrchestrationRun,
    OrchestrationStep,
    StepCacheEntry,
    StepCompensation,
    WebhookDelivery,
    WebhookInbox,
    WebhookSubscription,
)
from baton.retention import TABLES, PruneReport, RetentionError, parse_age, prune
from baton.segments import RUN_TAG
from baton.settings import get_settings
from baton.store.service import RunStore
from tests.checkpoint_helpers import pending, start, users
from tests.helpers import compile_text, execute

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=100)
RECENT = NOW - timedelta(days=10)
CUTOFF = NOW - timedelta(days=90)
AUDIT_CUTOFF = NOW - timedelta(days=365)
RUN_TABLES = (
    "approval_votes",
    "human_approvals",
    "orchestration_steps",
    "step_compensations",
    "deliverables",
    "orchestration_events",
)


@op
def noop() -> None:
    pass


@job
def segment() -> None:
    noop()


class World:
    """Rows written straight through the models, as the store leaves them."""

    def __init__(self, url: str, assets: Path) -> None:
        self.url = url
        self.assets = assets
        with session_scope(url) as s:
            definition = OrchestrationDefinition(
                organization="acme", slug="flow", version=1, name="Flow", spec={}, checksum="x"
            )
            s.add(definition)
            s.flush()
            self.definition_id = definition.id

    def run(
        self,
        status: str,
        ended: datetime | None,
        *,
        parent: uuid.UUID | None = None,
        root: uuid.UUID | None = None,
        compensation: str | None = None,
        audited: datetime | None = None,
        dagster_run_id: str | None = None,
        run_id: uuid.UUID | None = None,
    ) -> uuid.UUID:
        """A run with one of each row that belongs to a run (and an asset file)."""
        run_id = run_id or uuid.uuid4()
        changed = ended or RECENT
        file = self.assets / str(run_id) / "report.txt"
        file.parent.mkdir(parents=True)
        file.write_text("bytes")
        with session_scope(self.url) as s:
            s.add(
                OrchestrationRun(
                    id=run_id,
                    definition_id=self.definition_id,
                    organization="acme",
                    orchestration="flow",
                    version=1,
                    status=status,
                    parent_run_id=parent,
                    root_run_id=root,
                    compensation=compensation,
                    last_dagster_run_id=dagster_run_id,
                    created_at=changed - timedelta(hours=1),
                    updated_at=changed,
                    finished_at=ended,
                )
            )
            s.flush()
            approval = HumanApproval(
                run_id=run_id, step_id="check", status="resumed", requested_at=changed
            )
            s.add(approval)
            s.flush()
            s.add(ApprovalVote(approval_id=approval.id, user_name="ann", decision="approve"))
            s.add(OrchestrationStep(run_id=run_id, step_id="a", status="completed"))
            s.add(StepCompensation(run_id=run_id, step_id="a", agent="undo", status="completed"))
            s.add(
                Deliverable(
                    run_id=run_id, step_id="a", name="report", type="file",
                    asset_uri=file.as_uri(),
                )
            )  # fmt: skip
            s.add(
                OrchestrationEvent(
                    run_id=run_id, organization="acme", type="run.completed", created_at=changed
                )
            )
            if audited is not None:
                s.add(
                    OperatorAction(
                        organization="acme", run_id=run_id, action="abort", by="ops",
                        via="cli", outcome="accepted", created_at=audited,
                    )
                )  # fmt: skip
        return run_id

    def tree(self, statuses: list[tuple[str, datetime | None]]) -> list[uuid.UUID]:
        """A root, its child and the child's child (``statuses`` in that order)."""
        root = self.run(*statuses[0])
        child = self.run(*statuses[1], parent=root, root=root)
        grandchild = self.run(*statuses[2], parent=child, root=root)
        return [root, child, grandchild]

    def flat_rows(self) -> None:
        """Rows tied to no run: two of each kind go, the others stay."""
        with session_scope(self.url) as s:
            for created in (OLD, OLD, RECENT):
                s.add(OrchestrationEvent(organization="acme", type="x", created_at=created))
            for n, (status, received) in enumerate(
                [("processed", OLD), ("ignored", OLD), ("pending", OLD), ("processed", RECENT)]
            ):
                s.add(
                    WebhookInbox(
                        source="gh", organization="acme", webhook_id=f"w{n}", body={},
                        status=status, received_at=received,
                        processed_at=received if status != "pending" else None,
                    )
                )  # fmt: skip
            subscription = WebhookSubscription(
                organization="acme", url="https://example.test/hook", secret_encrypted="x"
            )
            s.add(subscription)
            s.flush()
            for n, (status, created) in enumerate(
                [("delivered", OLD), ("failed", OLD), ("pending", OLD), ("delivered", RECENT)]
            ):
                s.add(
                    WebhookDelivery(
                        subscription_id=subscription.id, event_sequence=n, event_type="x",
                        webhook_id=f"d{n}", payload={}, status=status, created_at=created,
                    )
                )  # fmt: skip
            for n, (created, expires) in enumerate(
                [(OLD, OLD + timedelta(days=1)), (OLD, OLD), (OLD, NOW + timedelta(days=1))]
            ):
                s.add(
                    StepCacheEntry(
                        organization="acme", agent="writer", agent_version="v",
                        input_hash=f"h{n}", orchestration="flow", step_id="a",
                        created_at=created, expires_at=expires,
                    )
                )  # fmt: skip

    def counts(self) -> dict[str, int]:
        with session_scope(self.url) as s:
            return {
                table.name: int(s.scalar(select(func.count()).select_from(table)) or 0)
                for table in Base.metadata.sorted_tables
            }

    def runs(self) -> set[uuid.UUID]:
        with session_scope(self.url) as s:
            return set(s.scalars(select(OrchestrationRun.id)))

    def prune(self, **kwargs: Any) -> PruneReport:
        options: dict[str, Any] = {"audit_cutoff": AUDIT_CUTOFF, "assets_root": self.assets}
        return prune(self.url, CUTOFF, now=NOW, **{**options, **kwargs})


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> World:
    return World(db_url, tmp_path / "assets")


def test_old_ended_trees_go_whole_and_everything_else_stays(world: World) -> None:
    gone = world.tree([("completed", OLD), ("failed", OLD), ("aborted", OLD)])
    gone.append(world.run("failed", OLD, compensation="completed"))
    kept = [
        world.run("awaiting_approval", None),  # waiting for months: not ended
        world.run("running", None),
        world.run("completed", RECENT),
        world.run("aborted", OLD, compensation="running"),  # its undoing still runs
        *world.tree([("completed", OLD), ("awaiting_children", None), ("running", None)]),
        *world.tree([("completed", OLD), ("completed", OLD), ("completed", RECENT)]),
    ]
    world.flat_rows()
    before = world.counts()

    dry = world.prune(dry_run=True)
    assert world.counts() == before
    assert all((world.assets / str(r) / "report.txt").is_file() for r in gone)

    report = world.prune()
    expected = {table: len(gone) for table in RUN_TABLES}
    expected |= {
        "orchestration_runs": len(gone),
        "operator_actions": 0,
        "orchestration_events (no run)": 2,
        "webhook_inbox": 2,
        "webhook_deliveries": 2,
        "step_cache (expired)": 2,
    }
    assert report.counts == expected
    assert dry.counts == report.counts
    assert (report.trees, dry.trees) == (2, 2)
    assert (report.asset_files, dry.asset_files) == (len(gone), len(gone))
    assert report.kept_unfinished == 2  # the trees whose root ended long ago
    assert report.dagster_runs is None

    assert world.runs() == set(kept)
    after = world.counts()
    for table in ("orchestration_steps", "human_approvals", "deliverables", "approval_votes"):
        assert after[table] == len(kept)
    assert after["orchestration_events"] == len(kept) + 1  # one recent run-less event
    assert (after["webhook_inbox"], after["webhook_deliveries"], after["step_cache"]) == (2, 2, 1)
    assert not any((world.assets / str(r)).exists() for r in gone)
    assert all((world.assets / str(r) / "report.txt").is_file() for r in kept)

    again = world.prune()
    assert sum(again.counts.values()) == 0 and again.trees == 0


def test_an_audited_tree_stays_until_the_audit_cutoff(world: World) -> None:
    audited = world.run("aborted", OLD, audited=OLD)
    report = world.prune()
    assert (report.trees, report.kept_audited) == (0, 1)
    assert world.runs() == {audited}

    report = world.prune(audit_cutoff=CUTOFF)
    assert (report.trees, report.counts["operator_actions"]) == (1, 1)
    assert world.runs() == set()


def test_batches_of_trees(world: World) -> None:
    for _ in range(5):
        world.tree([("completed", OLD), ("completed", OLD), ("completed", OLD)])
    kept = world.run("running", None)
    world.flat_rows()
    report = world.prune(batch_size=2)
    assert report.trees == 5
    assert report.counts["orchestration_runs"] == 15
    assert report.counts["orchestration_steps"] == 15
    assert report.counts["webhook_inbox"] == 2
    assert world.runs() == {kept}


def test_dagster_runs_of_pruned_trees_are_deleted(dagster_instance: DagsterInstance) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    world = World(url, Path(dagster_instance.root_directory) / "assets")
    old_id, kept_id = uuid.uuid4(), uuid.uuid4()
    # Two segments of the old run (one found only by its tag), one of the kept run.
    first = segment.execute_in_process(instance=dagster_instance, tags={RUN_TAG: str(old_id)})
    second = segment.execute_in_process(instance=dagster_instance, tags={RUN_TAG: str(old_id)})
    kept_segment = segment.execute_in_process(
        instance=dagster_instance, tags={RUN_TAG: str(kept_id)}
    )
    unfinished = dagster_instance.create_run_for_job(
        segment, tags={RUN_TAG: str(old_id)}, status=DagsterRunStatus.STARTED
    )
    world.run("completed", OLD, dagster_run_id=first.run_id, run_id=old_id)
    kept = world.run("running", None, dagster_run_id=kept_segment.run_id, run_id=kept_id)

    dry = world.prune(dry_run=True, instance=dagster_instance)
    assert dry.dagster_runs == 2 and dry.dagster_unfinished == 1
    assert dagster_instance.get_run_by_id(first.run_id) is not None

    report = world.prune(instance=dagster_instance)
    assert (report.dagster_runs, report.dagster_unfinished) == (2, 1)
    assert dagster_instance.get_run_by_id(first.run_id) is None
    assert dagster_instance.get_run_by_id(second.run_id) is None
    assert dagster_instance.get_run_by_id(unfinished.run_id) is not None
    assert dagster_instance.get_run_by_id(kept_segment.run_id) is not None
    assert world.runs() == {kept}


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["db", "prune", *argv])
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("value", ["90x", "-1d", "0d", "1.5d", "90"])
def test_a_bad_age_is_one_line_naming_the_option(value: str) -> None:
    code, out, err = _cli("--older-than", value)
    assert code == 2 and out == ""
    assert err.count("\n") == 1
    assert "--older-than" in err and "30d" in err and repr(value) in err
    with pytest.raises(RetentionError, match="--audit-older-than"):
        parse_age(value, "--audit-older-than")


def test_ages() -> None:
    assert parse_age("12h") == timedelta(hours=12)
    assert parse_age("30d") == timedelta(days=30)
    assert parse_age("2w") == timedelta(weeks=2)


def test_the_command_prunes_and_says_dagster_runs_remain(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATON_DATABASE_URL", world.url)
    monkeypatch.setenv("BATON_ASSETS_DIR", str(world.assets))
    get_settings.cache_clear()
    gone = world.run("completed", OLD)
    kept = world.run("completed", RECENT)

    code, out, _ = _cli("--older-than", "90d", "--dry-run")
    assert code == 0
    assert out.startswith("dry run, nothing deleted; would delete: what ended before ")
    assert "  orchestration_runs                     1\n" in out
    assert "Dagster's runs of these runs remain" in out
    assert world.runs() == {gone, kept}

    code, out, _ = _cli("--older-than", "90d")
    assert code == 0 and out.startswith("deleted: ")
    assert "  deliverable files                      1\n" in out
    assert world.runs() == {kept}
    assert not (world.assets / str(gone)).exists()


def test_the_command_with_dagster_needs_an_instance(
    sqlite_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATON_DATABASE_URL", sqlite_db)
    get_settings.cache_clear()
    code, out, err = _cli("--older-than", "90d", "--dagster")
    assert code == 1 and out == ""
    assert err.startswith("error: --dagster: ") and "dagster.yaml" in err
    assert err.count("\n") == 1


def test_the_command_with_dagster(
    sqlite_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI's own instance (DAGSTER_HOME); Postgres storage is covered above."""
    world = World(sqlite_db, tmp_path / "assets")
    monkeypatch.setenv("BATON_DATABASE_URL", world.url)
    get_settings.cache_clear()
    home = get_settings().dagster_home
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("")
    with DagsterInstance.get() as instance:
        done = segment.execute_in_process(instance=instance).run_id
    world.run("completed", OLD, dagster_run_id=done)

    code, out, _ = _cli("--older-than", "90d", "--dagster")
    assert code == 0
    assert "  Dagster runs                           1\n" in out
    assert "remain" not in out
    with DagsterInstance.get() as instance:
        assert instance.get_run_by_id(done) is None


DONE = """
slug: done-long-ago
name: Done long ago
version: 1
steps:
  - id: first
    agent: echo
    with: {text: one}
  - id: second
    agent: echo
    with: {text: "{{ steps.first.output.text }} two"}
"""

WAITING = """
slug: waiting-long
name: Waiting long
version: 1
steps:
  - id: draft
    agent: echo
    with: {title: kept}
  - id: review
    needs: [draft]
    checkpoint:
      prompt: "Publish?"
      approvers: [editors]
"""


def _rows_of(url: str, run_id: uuid.UUID) -> dict[str, int]:
    """Rows naming ``run_id`` in every table that has a run_id column."""
    with session_scope(url) as s:
        return {
            table.name: int(
                s.scalar(select(func.count()).select_from(table).where(table.c.run_id == run_id))
                or 0
            )
            for table in Base.metadata.sorted_tables
            if "run_id" in table.c
        }


def test_real_runs_executed_on_dagster(dagster_instance: DagsterInstance) -> None:
    """A run that really ran (two steps, its events, its Dagster run) goes entirely; a run
    waiting at a checkpoint for as long stays, with its Dagster run."""
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    users(url, ("ann", ["editors"]))
    _, done_job = compile_text(DONE, url)
    _, waiting_job = compile_text(WAITING, url)
    assert execute(done_job, dagster_instance, url).success
    waiting = start(waiting_job, dagster_instance, url)
    [done] = RunStore(url).list_runs(status="completed")
    assert _rows_of(url, done.id)["orchestration_steps"] == 2
    assert _rows_of(url, done.id)["orchestration_events"] > 0
    with session_scope(url) as s:  # as if both happened a hundred days ago
        for run in s.scalars(select(OrchestrationRun)):
            run.updated_at = OLD
            run.finished_at = OLD if run.status == "completed" else None
    done_segment = done.last_dagster_run_id
    assert done_segment is not None and dagster_instance.get_run_by_id(done_segment) is not None
    waiting_segments = {r.run_id for r in dagster_instance.get_runs()} - {done_segment}

    report = prune(url, CUTOFF, audit_cutoff=AUDIT_CUTOFF, instance=dagster_instance, now=NOW)
    assert (report.trees, report.counts["orchestration_steps"], report.dagster_runs) == (1, 2, 1)
    assert sum(_rows_of(url, done.id).values()) == 0
    assert dagster_instance.get_run_by_id(done_segment) is None
    assert {r.run_id for r in dagster_instance.get_runs()} == waiting_segments
    assert _rows_of(url, waiting)["human_approvals"] == 1
    assert pending(url, waiting).status == "pending"


def test_every_table_that_points_at_a_run_is_pruned() -> None:
    """A new table with a foreign key to a run (or an approval) must be in TABLES, or its rows
    would go by cascade without being counted (or block the delete)."""
    pointing = {
        table.name
        for table in Base.metadata.sorted_tables
        for fk in table.foreign_keys
        if fk.column.table.name in ("orchestration_runs", "human_approvals")
    }
    assert pointing <= set(TABLES)
