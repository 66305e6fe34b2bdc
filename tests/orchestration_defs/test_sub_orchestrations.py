"""Sub-orchestrations end to end on a real Dagster instance and real databases.

Segments run in process (``execute_in_process``) as the daemon would run them: the parent's
run worker cannot queue runs here (no queued coordinator), so it hands its claims back and the
real children sensor launches them; a child's own end (its finish op) advances the parent, the
sensor launches what that claimed. Every moment a child is started, the number of children
running is recorded.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance, JobDefinition, RunRequest, SensorResult, build_sensor_context
from fastapi.testclient import TestClient

from baton.approvals import Approvals
from baton.cli.main import main
from baton.cli.runs import tree_lines
from baton.lifecycle import Lifecycle
from baton.lineage import pending_in_tree, run_tree
from baton.segment_status import segment_statuses
from baton.segments import PARENT_RUN_TAG, PARENT_STEP_TAG, ROOT_RUN_TAG, RUN_TAG, run_request
from baton.settings import get_settings
from baton.state import TERMINAL_RUN_STATUSES
from baton.store.service import RunStore
from orchestration_defs.compiler.resources import BatonStoreResource
from sensors.children import build_children_sensor
from tests.baton.api.ui.support import csrf_of
from tests.baton.api.world import build_world
from tests.checkpoint_helpers import launch, tick, users
from tests.helpers import CALLS, ScriptedAgent, compile_text, execute

CHILD = """
slug: period
name: Period
version: 1
inputs:
  start: {type: string, required: true}
  position: {type: integer, default: 0}
steps:
  - id: work
    agent: echo
    with: {start: "{{ inputs.start }}", position: "{{ inputs.position }}"}
outputs:
  start: "{{ steps.work.output.start }}"
  position: "{{ steps.work.output.position }}"
"""

PARENT = """
slug: manager
name: Manager
version: 1
inputs:
  periods: {type: array, default: ["2025-01", "2025-02", "2025-03", "2025-04", "2025-05"]}
steps:
  - id: periods
    orchestration: period
    for_each: "{{ inputs.periods }}"
    max_parallel: 2
    on_child_failure: POLICY
    with:
      start: "{{ item }}"
      position: "{{ index }}"
  - id: total
    agent: echo
    with: {starts: "{{ steps.periods.output.children | map(attribute='outputs') | list }}"}
outputs:
  children: "{{ steps.periods.output.children }}"
"""


@dataclass
class Tree:
    instance: DagsterInstance
    url: str
    jobs: dict[str, JobDefinition]
    agent: ScriptedAgent
    running: list[int] = field(default_factory=list)
    requests: list[RunRequest] = field(default_factory=list)

    @property
    def store(self) -> RunStore:
        return RunStore(self.url)

    def start(self, **inputs: Any) -> uuid.UUID:
        result = execute(
            self.jobs["manager"], self.instance, self.url, agent=self.agent, inputs=inputs
        )
        assert result.success
        [root] = [r for r in self.store.list_runs(limit=500) if r.parent_run_id is None]
        return root.id

    def tick(self) -> list[RunRequest]:
        sensor = build_children_sensor(list(self.jobs))
        context = build_sensor_context(
            instance=self.instance,
            resources={"baton_store": BatonStoreResource(database_url=self.url)},
        )
        result = sensor(context)
        self.last = result
        return list(result.run_requests or []) if isinstance(result, SensorResult) else []

    def children_running(self, parent: uuid.UUID) -> int:
        kids = self.store.list_runs(parent_run_id=parent, limit=500)
        return sum(1 for c in kids if c.segment_id and c.status not in TERMINAL_RUN_STATUSES)

    def drive(self, parent: uuid.UUID, rounds: int = 40) -> None:
        """Tick and run what the sensor asks until it asks for nothing."""
        for _ in range(rounds):
            requests = self.tick()
            if not requests:
                return
            for request in requests:
                self.requests.append(request)
                self.running.append(self.children_running(parent))
                job = self.jobs[request.job_name]
                launch(job, self.instance, self.url, request, resources={"agent_echo": self.agent})
        raise AssertionError("the tree did not settle")


def make_tree(instance: DagsterInstance, policy: str = "fail", fail: int = 0) -> Tree:
    url = instance.baton_db_url  # type: ignore[attr-defined]
    _, child = compile_text(CHILD, url)
    _, parent = compile_text(PARENT.replace("POLICY", policy), url)
    agent = ScriptedAgent(key=uuid.uuid4().hex, fail={"work": fail}, retryable=False)
    return Tree(instance, url, {"period": child, "manager": parent}, agent)


@pytest.fixture
def tree(dagster_instance: DagsterInstance) -> Iterator[Tree]:
    yield make_tree(dagster_instance)


def test_children_run_in_for_each_order_with_max_parallel_held(tree: Tree) -> None:
    root = tree.start()
    store = tree.store
    assert store.get_run(root).status == "awaiting_children"
    [step] = [s for s in store.run_detail(root).steps if s.step_id == "periods"]
    assert step.status == "waiting"
    tree.drive(root)
    run = store.get_run(root)
    assert run.status == "completed", run.error
    children = run.outputs["children"]
    assert [c["outputs"] for c in children] == [
        {"start": f"2025-0{i + 1}", "position": i} for i in range(5)
    ]
    assert {c["status"] for c in children} == {"completed"}
    assert max(tree.running) <= 2 and 2 in tree.running
    kids = store.list_runs(parent_run_id=root, limit=50)
    assert sorted(k.parent_step_index for k in kids) == [0, 1, 2, 3, 4]
    assert {(k.root_run_id, k.parent_step_id, k.created_by) for k in kids} == {
        (root, "periods", "dagster-ui")
    }
    # Each child launched once; the parent resumed once.
    child_requests = [r for r in tree.requests if r.job_name == "period"]
    assert len(child_requests) == 5
    assert len({r.tags[RUN_TAG] for r in child_requests}) == 5
    assert [r.tags[RUN_TAG] for r in tree.requests if r.job_name == "manager"] == [str(root)]
    first = next(r for r in child_requests if r.tags[PARENT_STEP_TAG] == "periods[0]")
    assert (first.tags[PARENT_RUN_TAG], first.tags[ROOT_RUN_TAG]) == (str(root), str(root))
    types = [e.type for e in store.run_detail(root).events]
    assert types.count("children.completed") == 1 and types.count("child.ended") == 5
    assert CALLS[tree.agent.key]["total"] == 1


def test_a_failing_child_fails_the_parent_step_and_aborts_its_siblings(
    dagster_instance: DagsterInstance,
) -> None:
    tree = make_tree(dagster_instance, policy="fail", fail=1)
    root = tree.start()
    tree.drive(root)
    run = tree.store.get_run(root)
    assert run.status == "failed"
    assert run.error["type"] == "ChildFailed" and "index 0" in run.error["message"]
    statuses = sorted(c.status for c in tree.store.list_runs(parent_run_id=root, limit=50))
    assert statuses[0] == "aborted" and "failed" in statuses
    assert "pending" not in statuses and "running" not in statuses
    assert CALLS[tree.agent.key]["total"] == 0


def test_a_failing_child_is_reported_under_continue(dagster_instance: DagsterInstance) -> None:
    tree = make_tree(dagster_instance, policy="continue", fail=1)
    root = tree.start()
    tree.drive(root)
    run = tree.store.get_run(root)
    assert run.status == "completed", run.error
    children = run.outputs["children"]
    assert [c["status"] for c in children] == ["failed"] + ["completed"] * 4
    assert "scripted failure" in children[0]["error"]["message"]
    assert children[0]["outputs"] is None


def test_aborting_the_parent_aborts_running_and_waiting_children(tree: Tree) -> None:
    root = tree.start()
    requests = tree.tick()
    assert len(requests) == 2  # max_parallel: two claimed, three not yet
    Lifecycle(tree.store, None, via="api").abort(root, by="ann")
    kids = tree.store.list_runs(parent_run_id=root, limit=50)
    assert {k.status for k in kids} == {"aborted"}
    assert tree.tick() == []
    # A claimed child whose segment starts late does nothing.
    agent = {"agent_echo": tree.agent}
    result = launch(tree.jobs["period"], tree.instance, tree.url, requests[0], resources=agent)
    assert not result.success
    assert CALLS[tree.agent.key]["work"] == 0


REVIEWED = """
slug: reviewed
name: Reviewed
version: 1
inputs:
  start: {type: string, required: true}
steps:
  - id: draft
    agent: echo
    with: {text: "{{ inputs.start }}"}
  - id: review
    checkpoint:
      prompt: "Publish {{ steps.draft.output.text }}?"
      show: "{{ steps.draft.output }}"
      approvers: [finance]
outputs:
  text: "{{ steps.review.output.value.text }}"
"""

MIDDLE = """
slug: middle
name: Middle
version: 1
inputs:
  start: {type: string, required: true}
steps:
  - id: inner
    orchestration: reviewed
    with: {start: "{{ inputs.start }}"}
outputs:
  text: "{{ steps.inner.output.children[0].outputs.text }}"
"""

TOP = """
slug: top
name: Top
version: 1
steps:
  - id: outer
    orchestration: middle
    with: {start: "2025-07"}
outputs:
  text: "{{ steps.outer.output.children[0].outputs.text }}"
"""


def test_a_checkpoint_in_a_grandchild_is_decided_from_the_roots_list(
    dagster_instance: DagsterInstance,
) -> None:
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    users(url, ("fin", ["finance"]), ("dagster-ui", ["finance"]))
    jobs = {}
    for text in (REVIEWED, MIDDLE, TOP):
        spec, job = compile_text(text, url)
        jobs[spec.job_name] = job
    tree = Tree(dagster_instance, url, jobs, ScriptedAgent(key=uuid.uuid4().hex))
    result = execute(jobs["top"], dagster_instance, url, agent=tree.agent)
    assert result.success
    [root] = [r.id for r in tree.store.list_runs(limit=50) if r.parent_run_id is None]
    tree.drive(root)
    [pending] = pending_in_tree(tree.store, root)
    assert [link["orchestration"] for link in pending.chain] == ["top", "middle", "reviewed"]
    assert pending.chain[0]["run_id"] == str(root)
    approvals = Approvals(tree.store)
    # The root's launcher counts as the launcher for no-self-approval inside the tree.
    assert "launched this run" in (approvals.why_not(pending.approval.id, "dagster-ui") or "")
    Lifecycle(tree.store, None, via="api").decide(
        pending.approval.id, user="fin", decision="continue"
    )
    # The approval sensor resumes the grandchild; its end resumes the child, then the root.
    agent = {"agent_echo": tree.agent}
    for request in tick(dagster_instance, url, jobs["reviewed"]):
        launch(jobs["reviewed"], dagster_instance, url, request, resources=agent)
    tree.drive(root)
    top = tree.store.get_run(root)
    assert top.status == "completed", top.error
    assert top.outputs == {"text": "2025-07"}
    node = run_tree(tree.store, root, statuses=lambda ids: segment_statuses(dagster_instance, ids))
    [middle] = node["children"]
    [leaf] = middle["children"]
    assert (node["status"], middle["status"], leaf["status"]) == ("completed",) * 3
    assert len(leaf["segments"]) == 2 and len(node["segments"]) == 2
    # Each segment with its Dagster status, read from the instance in one call.
    assert {s["status"] for n in (node, middle, leaf) for s in n["segments"]} == {"SUCCESS"}
    lines = tree_lines(node)
    assert lines[0].startswith(f"top {root}  completed") and "  SUCCESS" in lines[1]


def _grandchild_waiting(dagster_instance: DagsterInstance) -> tuple[Tree, uuid.UUID]:
    """top -> middle -> reviewed, driven until the grandchild waits at its checkpoint."""
    url = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    users(url, ("fin", ["finance"]), ("dagster-ui", ["finance"]))
    jobs = {}
    for text in (REVIEWED, MIDDLE, TOP):
        spec, job = compile_text(text, url)
        jobs[spec.job_name] = job
    tree = Tree(dagster_instance, url, jobs, ScriptedAgent(key=uuid.uuid4().hex))
    assert execute(jobs["top"], dagster_instance, url, agent=tree.agent).success
    [root] = [r.id for r in tree.store.list_runs(limit=50) if r.parent_run_id is None]
    tree.drive(root)
    return tree, root


def test_a_grandchilds_checkpoint_is_listed_from_the_root_by_api_cli_and_page(
    dagster_instance: DagsterInstance,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Deployment level: the API, the CLI and the page list the grandchild's checkpoint from
    the root with its chain; deciding it through the API resumes the grandchild, whose end
    resumes the child, then the root."""
    tree, root = _grandchild_waiting(dagster_instance)
    world = build_world(tmp_path, tree.url)
    try:
        fin = world.add_user("global", "fin", "approver", ["finance"])
        headers = {"Authorization": f"Bearer {fin}"}
        _execute(tree, root)  # a second tree, whose approval must not be listed
        where = f"in reviewed (child 1 of inner) of middle (child 1 of outer) of top run {root}"
        for param in ("run_id", "root_run_id"):
            page = world.client.get(
                "/api/v1/approvals",
                params={"status": "pending", param: str(root)},
                headers=headers,
            )
            assert page.status_code == 200, page.text
            [item] = page.json()["items"]
            assert [link["orchestration"] for link in item["chain"]] == [
                "top",
                "middle",
                "reviewed",
            ]
            assert [link["parent_step"] for link in item["chain"]] == [None, "outer", "inner"]
            assert item["root_run_id"] == str(root) and item["where"] == where
        everything = world.client.get("/api/v1/approvals", headers=headers).json()["items"]
        assert len(everything) == 2 and {a["root_run_id"] for a in everything} > {str(root)}

        monkeypatch.setenv("BATON_DATABASE_URL", tree.url)
        get_settings.cache_clear()
        capsys.readouterr()
        assert main(["approvals", "list", "--run", str(root)]) == 0
        out = capsys.readouterr().out
        assert item["approval_id"] in out and where in out
        assert out.count("reviewed (child 1 of inner)") == 1

        ui = TestClient(world.app, follow_redirects=False)
        login = ui.get("/ui/login")
        signed = ui.post("/ui/login", data={"token": fin, "csrf": csrf_of(login.text), "next": ""})
        assert signed.status_code == 303
        html = ui.get("/ui/approvals", params={"run": str(root)}).text
        assert (
            f"approval-{item['approval_id']}" in html and html.count('class="approval card"') == 1
        )
        assert where in html

        decided = world.client.post(
            f"/api/v1/approvals/{item['approval_id']}/decision",
            json={"decision": "continue"},
            headers=headers,
        )
        assert decided.status_code == 200, decided.text
        assert decided.json()["chain"] == item["chain"]
        # The API's background resume claimed it and launched (recorded) the next segment.
        [launched] = [g["segment"] for g in world.gateway.launches]
        assert launched.job_name == "reviewed"
    finally:
        world.client.__exit__(None, None, None)
    agent = {"agent_echo": tree.agent}
    job = tree.jobs["reviewed"]
    assert launch(job, tree.instance, tree.url, run_request(launched), resources=agent).success
    tree.drive(root)
    top = tree.store.get_run(root)
    assert top.status == "completed", top.error
    assert top.outputs == {"text": "2025-07"}
    assert pending_in_tree(tree.store, root) == []


def _execute(tree: Tree, root: uuid.UUID) -> None:
    """Start another top run and drive it to its grandchild's checkpoint."""
    before = {r.id for r in tree.store.list_runs(limit=100)}
    assert execute(tree.jobs["top"], tree.instance, tree.url, agent=tree.agent).success
    [other] = [
        r.id for r in tree.store.list_runs(limit=100) if r.id not in before and not r.parent_run_id
    ]
    tree.drive(other)
    assert len(pending_in_tree(tree.store, other)) == 1


@pytest.mark.slow
@pytest.mark.postgres
def test_twenty_children_on_postgres_each_once_parent_once(pg_db: str) -> None:
    """Load: 20 children, two at a time, each launched once, the parent resumed once."""
    from dagster import instance_for_test

    with instance_for_test(
        overrides={"storage": {"postgres": {"postgres_url": pg_db.replace("+psycopg2", "")}}}
    ) as instance:
        instance.baton_db_url = pg_db  # type: ignore[attr-defined]
        tree = make_tree(instance)
        periods = [f"p{i:02d}" for i in range(20)]
        root = tree.start(periods=periods)
        for _ in range(60):
            requests = tree.tick()
            if not requests:
                break
            tree.running.append(tree.children_running(root))
            tree.requests.extend(requests)
            # One at a time: Dagster's in-process execution hung when run from threads here
            # (not in Baton's tables: no query waited); the lock is exercised by each end.
            for request in requests:
                launch(
                    tree.jobs[request.job_name],
                    instance,
                    pg_db,
                    request,
                    resources={"agent_echo": tree.agent},
                )
                tree.running.append(tree.children_running(root))
            tree.running.append(tree.children_running(root))
        run = tree.store.get_run(root)
        assert run.status == "completed", run.error
        assert [c["outputs"]["start"] for c in run.outputs["children"]] == periods
        child_runs = [r.tags[RUN_TAG] for r in tree.requests if r.job_name == "period"]
        assert len(child_runs) == len(set(child_runs)) == 20
        assert [r.tags[RUN_TAG] for r in tree.requests if r.job_name == "manager"] == [str(root)]
        assert max(tree.running) <= 2
        assert CALLS[tree.agent.key]["work"] == 20
        types = [e.type for e in tree.store.run_detail(root).events]
        assert types.count("children.completed") == 1
