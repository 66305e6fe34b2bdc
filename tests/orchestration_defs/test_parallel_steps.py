"""Compiled jobs on the threaded executor: independent steps overlap, dependencies hold.

Overlap is proven without timing: the agent of two independent steps waits at a barrier that
only opens when both calls are in flight; run one after another, the barrier breaks and the
step fails.
"""

from __future__ import annotations

import itertools
import textwrap
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from dagster import (
    DagsterInstance,
    Definitions,
    JobDefinition,
    build_reconstructable_job,
    execute_job,
)

from agent_resources.base import AgentError, AgentRequest, AgentResult
from agent_resources.resources import AgentResource
from baton.approvals import Approvals
from baton.settings import get_settings
from baton.store.service import RunStore
from orchestration_defs.compiler.job import build_job
from orchestration_defs.compiler.resources import BatonStoreResource
from orchestration_defs.language.library import load_text
from tests.helpers import register


@dataclass
class Trace:
    """What the agent saw for one test: start/end sequence numbers and calls in flight."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    seq: Iterator[int] = field(default_factory=itertools.count)
    started: dict[str, int] = field(default_factory=dict)
    ended: dict[str, int] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    in_flight: int = 0
    most_in_flight: int = 0
    barrier: threading.Barrier = field(default_factory=lambda: threading.Barrier(2, timeout=20))


# Dagster copies resources before a run, so what the agent saw lives here, by test key.
TRACES: dict[str, Trace] = {}


class GateAgent(AgentResource):
    """Echoes its input; steps in ``meet`` wait at the trace's barrier, ``fail`` fails first."""

    key: str
    meet: list[str] = []
    fail: dict[str, int] = {}

    def run(self, *, request: AgentRequest) -> AgentResult:
        trace = TRACES[self.key]
        step = request.step_id
        with trace.lock:
            trace.calls[step] += 1
            count = trace.calls[step]
            trace.started[step] = next(trace.seq)
            trace.in_flight += 1
            trace.most_in_flight = max(trace.most_in_flight, trace.in_flight)
        try:
            if step in self.meet:
                try:
                    trace.barrier.wait()
                except threading.BrokenBarrierError as exc:
                    raise AgentError(f"{step} never met its sibling", retryable=False) from exc
            if count <= self.fail.get(step, 0):
                raise AgentError(f"scripted failure {count} of {step}", retryable=True)
        finally:
            with trace.lock:
                trace.in_flight -= 1
                trace.ended[step] = next(trace.seq)
        return AgentResult(output=request.input)


def gate_job(text: str, url: str, key: str, meet: list[str], fail: dict[str, int]) -> JobDefinition:
    """The compiled job with a GateAgent as ``echo`` (module level: reconstructable)."""
    spec, errors = load_text(textwrap.dedent(text), source="test.yaml", known_agents={"echo"})
    assert spec is not None, errors
    resources = {
        "baton_store": BatonStoreResource(database_url=url),
        "agent_echo": GateAgent(key=key, meet=meet, fail=fail),
    }
    return Definitions(jobs=[build_job(spec)], resources=resources).get_job_def(spec.job_name)


DIAMOND = """
slug: diamond
name: Diamond
version: 1
{concurrency}
steps:
  - id: root
    agent: echo
    with: {{v: 1}}
  - id: left
    agent: echo
    {retry}
    with: {{v: "{{{{ steps.root.output.v }}}}"}}
  - id: right
    agent: echo
    with: {{v: "{{{{ steps.root.output.v }}}}"}}
  - id: join
    agent: echo
    with:
      l: "{{{{ steps.left.output.v }}}}"
      r: "{{{{ steps.right.output.v }}}}"
outputs:
  l: "{{{{ steps.join.output.l }}}}"
"""


@pytest.fixture
def threaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_EXECUTION__EXECUTOR", "threaded")
    get_settings.cache_clear()


def _run(
    instance: DagsterInstance,
    text: str,
    *,
    meet: list[str] = (),  # type: ignore[assignment]
    fail: dict[str, int] | None = None,
) -> tuple[bool, Trace, str]:
    url: str = instance.baton_db_url  # type: ignore[attr-defined]
    key = uuid.uuid4().hex
    TRACES[key] = Trace()
    spec, errors = load_text(textwrap.dedent(text), source="test.yaml", known_agents={"echo"})
    assert spec is not None, errors
    register(spec, url)
    job = build_reconstructable_job(
        __name__, "gate_job", reconstructable_args=(text, url, key, list(meet), fail or {})
    )
    with execute_job(job, instance, run_config={"inputs": {}}) as result:
        success = result.success
    return success, TRACES[key], url


def _assert_order(trace: Trace) -> None:
    # Each step started after every step it depends on had ended.
    for step, deps in {"left": ["root"], "right": ["root"], "join": ["left", "right"]}.items():
        for dep in deps:
            assert trace.started[step] > trace.ended[dep], (step, dep, trace)


def test_independent_steps_overlap_and_dependencies_hold(
    threaded: None, dagster_instance: DagsterInstance
) -> None:
    text = DIAMOND.format(concurrency="", retry="")
    success, trace, url = _run(dagster_instance, text, meet=["left", "right"])
    assert success
    assert trace.most_in_flight == 2
    _assert_order(trace)
    runs = RunStore(url).list_runs()
    assert [(r.status, r.outputs) for r in runs] == [("completed", {"l": 1})]
    steps = RunStore(url).run_detail(runs[0].id).steps
    assert sorted((s.step_id, s.status) for s in steps) == [
        ("join", "completed"),
        ("left", "completed"),
        ("right", "completed"),
        ("root", "completed"),
    ]


def test_concurrency_one_runs_one_step_at_a_time(
    threaded: None, dagster_instance: DagsterInstance
) -> None:
    text = DIAMOND.format(concurrency="concurrency: 1", retry="")
    success, trace, _ = _run(dagster_instance, text)
    assert success
    assert trace.most_in_flight == 1
    _assert_order(trace)


def test_a_retried_step_under_threads_while_its_sibling_runs(
    threaded: None, dagster_instance: DagsterInstance
) -> None:
    text = DIAMOND.format(concurrency="", retry="retry: {max_attempts: 3}")
    success, trace, url = _run(dagster_instance, text, fail={"left": 2})
    assert success
    assert trace.calls["left"] == 3 and trace.calls["right"] == 1
    _assert_order(trace)
    run = RunStore(url).list_runs()[0]
    left = [s for s in RunStore(url).run_detail(run.id).steps if s.step_id == "left"]
    assert [(s.status, s.attempt) for s in left][-1] == ("completed", 3)


def test_a_failed_step_fails_the_run_and_skips_what_depends_on_it(
    threaded: None, dagster_instance: DagsterInstance
) -> None:
    text = DIAMOND.format(concurrency="", retry="")
    success, trace, url = _run(dagster_instance, text, fail={"left": 1})
    assert not success
    assert "join" not in trace.started and trace.calls["right"] == 1
    assert [r.status for r in RunStore(url).list_runs()] == ["failed"]


PAUSING = """
slug: pausing
name: Pausing
version: 1
steps:
  - id: root
    agent: echo
    with: {v: 1}
  - id: gate
    needs: [root]
    checkpoint: {prompt: "Go on?"}
  - id: work
    agent: echo
    needs: [root]
    with: {v: 2}
  - id: after
    agent: echo
    needs: [gate]
    with: {w: "{{ steps.work.output.v }}"}
outputs:
  w: "{{ steps.after.output.w }}"
"""


def test_a_checkpoint_pausing_while_a_sibling_runs(
    threaded: None, dagster_instance: DagsterInstance
) -> None:
    # The sibling finishes and is memoized, the run pauses; the resume reuses the sibling.
    from tests.checkpoint_helpers import pending, tick, users

    success, trace, url = _run(dagster_instance, PAUSING)
    assert success
    [run] = RunStore(url).list_runs()
    assert run.status == "awaiting_approval"
    steps = {s.step_id: s.status for s in RunStore(url).run_detail(run.id).steps}
    assert steps["work"] == "completed" and "after" not in trace.started
    users(url, ("ann", []))
    Approvals(RunStore(url)).decide(pending(url, run.id).id, user="ann", decision="continue")
    key = next(k for k, t in TRACES.items() if t is trace)
    job = build_reconstructable_job(
        __name__, "gate_job", reconstructable_args=(PAUSING, url, key, [], {})
    )
    [request] = tick(dagster_instance, url, gate_job(PAUSING, url, key, [], {}))
    with execute_job(
        job, dagster_instance, run_config=request.run_config, tags=dict(request.tags)
    ) as result:
        assert result.success
    assert RunStore(url).get_run(run.id).status == "completed"
    assert RunStore(url).get_run(run.id).outputs == {"w": 2}
    assert trace.calls["work"] == 1 and trace.calls["after"] == 1
