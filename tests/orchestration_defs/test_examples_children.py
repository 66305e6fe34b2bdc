"""The shipped examples that start child runs (finance-manager, finance-review), end to end on a
real Dagster instance: the real catalog agents (embedded finance data, extractive summaries), a
real local server as the publishing target, the finance checkpoints of the children decided
here from the root's list, and every segment run as the daemon would run it (what the children
and approval sensors ask for). `make demo` runs finance-manager in a deployment
(tests/e2e/test_demo.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from dagster import DagsterInstance, JobDefinition, RunRequest, SensorResult, build_sensor_context

from agent_resources.contracts import agent_input_checks
from agent_resources.registry import agent_resources
from baton.approvals import Approvals
from baton.lineage import pending_in_tree, run_tree
from baton.settings import SHIPPED_LIBRARY
from baton.state import TERMINAL_RUN_STATUSES
from baton.store.service import RunStore
from orchestration_defs.compiler.job import build_job
from orchestration_defs.compiler.resources import BatonStoreResource
from orchestration_defs.language.library import load_library
from sensors.approvals import build_approval_sensor
from sensors.children import build_children_sensor
from tests.checkpoint_helpers import launch, users
from tests.fakes.http import FakeServer, Reply
from tests.helpers import register

PERIODS = [
    {"start": "2025-01", "end": "2025-03"},
    {"start": "2025-04", "end": "2025-06"},
    {"start": "2025-07", "end": "2025-09"},
]
EDIT = "Q1 2025: revenue up in every region; APAC churn needs a look. Figures final."


@dataclass
class Library:
    """The shipped library compiled on one instance, and a way to run what sensors ask for."""

    instance: DagsterInstance
    url: str
    jobs: dict[str, JobDefinition]
    running: list[int] = field(default_factory=list)

    @property
    def store(self) -> RunStore:
        return RunStore(self.url)

    def start(self, slug: str, *, succeeds: bool = True, **inputs: Any) -> uuid.UUID:
        result = self.jobs[slug].execute_in_process(
            run_config={"inputs": inputs, "baton_run_id": ""},
            instance=self.instance,
            resources=self._resources(),
            raise_on_error=False,
        )
        assert result.success is succeeds
        [root] = [r for r in self.store.list_runs(limit=100) if r.parent_run_id is None]
        return root.id

    def settle(self, root: uuid.UUID) -> None:
        """Run what the children and approval sensors ask for until they ask for nothing."""
        for _ in range(60):
            requests = self._tick()
            if not requests:
                return
            for request in requests:
                self.running.append(self._children_running(root))
                job = self.jobs[request.job_name]
                launch(job, self.instance, self.url, request, resources=agent_resources())
        raise AssertionError("the tree did not settle")

    def _tick(self) -> list[RunRequest]:
        names, jobs = list(self.jobs), list(self.jobs.values())
        found: list[RunRequest] = []
        for sensor in (build_children_sensor(names), build_approval_sensor(names, jobs)):
            context = build_sensor_context(instance=self.instance, resources=self._resources())
            result = sensor(context)
            if isinstance(result, SensorResult):
                found += list(result.run_requests or [])
        return found

    def _children_running(self, root: uuid.UUID) -> int:
        kids = self.store.list_runs(parent_run_id=root, limit=100)
        return sum(1 for k in kids if k.segment_id and k.status not in TERMINAL_RUN_STATUSES)

    def _resources(self) -> dict[str, Any]:
        return {"baton_store": BatonStoreResource(database_url=self.url), **agent_resources()}


@pytest.fixture
def library(dagster_instance: DagsterInstance) -> Library:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    loaded, errors = load_library([SHIPPED_LIBRARY], known_agents=agent_input_checks())
    assert errors == [], [str(e) for e in errors]
    jobs = {}
    for item in loaded:
        register(item.spec, url)
        jobs[item.spec.job_name] = build_job(item.spec)
    users(url, ("fiona", ["finance"]))
    return Library(dagster_instance, url, jobs)


@pytest.fixture
def target(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeServer]:
    with FakeServer() as server:
        server.route("POST", "/publish", lambda _r: Reply(201, {"id": "post"}))
        monkeypatch.setenv("BATON_PUBLISH_URL", server.url)
        yield server


def _approve_pending(
    library: Library, root: uuid.UUID, parent: str, *, edit_period: str = ""
) -> list[str]:
    """Approve every pending approval of the tree from the root's list; the periods approved."""
    decided = []
    for item in pending_in_tree(library.store, root):
        approval = item.approval
        assert [link["orchestration"] for link in item.chain] == [parent, "kpi-tracking"]
        period = approval.show["period"]
        changes = {"summary": EDIT} if period == edit_period else {}
        Approvals(library.store).decide(
            approval.id, user="fiona", decision="continue", modifications=changes
        )
        decided.append(period)
    return decided


def test_finance_manager_runs_kpi_tracking_per_period_and_summarizes_across_them(
    library: Library, target: FakeServer
) -> None:
    root = library.start("finance_manager", periods=PERIODS)
    store = library.store
    assert store.get_run(root).status == "awaiting_children"
    library.settle(root)
    # Two children at their checkpoints (max_parallel 2); the third not started yet.
    first = _approve_pending(library, root, "finance-manager", edit_period="2025-01 to 2025-03")
    assert first == ["2025-01 to 2025-03", "2025-04 to 2025-06"]
    library.settle(root)
    assert _approve_pending(library, root, "finance-manager") == ["2025-07 to 2025-09"]
    library.settle(root)
    run = store.get_run(root)
    assert run.status == "completed", run.error
    outputs = run.outputs
    assert outputs["statuses"] == ["completed"] * 3
    assert outputs["periods"] == [
        "2025-01 to 2025-03",
        "2025-04 to 2025-06",
        "2025-07 to 2025-09",
    ]
    assert outputs["edited"] == [True, False, False]
    assert outputs["summaries"][0] == EDIT
    overview = outputs["overview"]
    assert overview.startswith("3 rows; period: 2025-01 to 2025-03, 2025-04 to 2025-06")
    assert "Revenue: total" in overview and "Ending MRR: total" in overview
    assert max(library.running) <= 2 and 2 in library.running
    posts = [r.json() for r in target.calls("POST", "/publish")]
    assert sorted(p["period"] for p in posts) == outputs["periods"]
    assert {p["approved_by"] for p in posts} == {"fiona"}
    assert [p["summary"] for p in posts if p["period"] == "2025-01 to 2025-03"] == [EDIT]
    tree = run_tree(store, root)
    assert [c["status"] for c in tree["children"]] == ["completed"] * 3
    assert all(len(c["segments"]) == 2 for c in tree["children"])  # before and after approval


def test_a_period_finance_aborts_is_reported_and_the_others_are_summarized(
    library: Library, target: FakeServer
) -> None:
    root = library.start("finance_manager", periods=PERIODS[:2])
    library.settle(root)
    [first, second] = pending_in_tree(library.store, root)
    Approvals(library.store).decide(first.approval.id, user="fiona", decision="abort")
    Approvals(library.store).decide(second.approval.id, user="fiona", decision="continue")
    library.settle(root)
    run = library.store.get_run(root)
    assert run.status == "completed", run.error
    assert run.outputs["statuses"] == ["aborted", "completed"]
    assert run.outputs["periods"] == ["2025-04 to 2025-06"]
    assert run.outputs["overview"].startswith("1 row; period: 2025-04 to 2025-06")
    assert [r.json()["period"] for r in target.calls("POST", "/publish")] == ["2025-04 to 2025-06"]


def test_finance_review_runs_one_child_and_shapes_its_review(
    library: Library, target: FakeServer
) -> None:
    root = library.start("finance_review", start_month="2025-01", end_month="2025-06")
    library.settle(root)
    assert _approve_pending(library, root, "finance-review") == ["2025-01 to 2025-06"]
    library.settle(root)
    run = library.store.get_run(root)
    assert run.status == "completed", run.error
    review = run.outputs["review"]
    assert review["title"] == "Finance review 2025-01 to 2025-06"
    assert review["approved_by"] == "fiona" and review["regions"] == 4
    [child] = library.store.list_runs(parent_run_id=root, limit=10)
    assert review["run"] == str(child.id) and review["summary"].startswith("4 rows")
    assert len(target.calls("POST", "/publish")) == 1


def test_a_period_that_does_not_fit_kpi_tracking_fails_the_step_naming_the_input(
    library: Library, target: FakeServer
) -> None:
    periods = [{"start": "2025-13", "end": "2025-03"}]
    root = library.start("finance_manager", succeeds=False, periods=periods)
    library.settle(root)
    run = library.store.get_run(root)
    assert run.status == "failed"
    assert "input 'start_month' must match pattern" in run.error["message"], run.error
    assert "got '2025-13'" in run.error["message"]
    assert library.store.list_runs(parent_run_id=root, limit=10) == []
    assert target.requests == []
