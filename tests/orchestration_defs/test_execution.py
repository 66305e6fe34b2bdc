"""Compiled jobs executed on a real Dagster instance write Baton's state (SQLite and Postgres)."""

from __future__ import annotations

import uuid

from dagster import DagsterInstance, DagsterRunStatus

from baton.lifecycle import Lifecycle
from baton.store.service import RunStore
from orchestration_defs.compiler.resources import BatonStoreResource
from tests.helpers import CALLS, ScriptedAgent, compile_text, execute

CHAIN = """
slug: chain
name: Chain
version: 1
inputs:
  items: {type: array, required: true}
  meta: {type: object, default: {a: 1}}
steps:
  - id: first
    agent: echo
    with:
      items: "{{ inputs.items }}"
      meta: "{{ inputs.meta }}"
      label: "n={{ inputs.items | length }}"
  - id: second
    agent: echo
    retry: {max_attempts: 3}
    with:
      items: "{{ steps.first.output.items }}"
      meta: "{{ steps.first.output.meta }}"
outputs:
  items: "{{ steps.second.output.items }}"
  meta: "{{ steps.second.output.meta }}"
  label: "{{ steps.first.output.label }}"
"""


def _url(instance: DagsterInstance) -> str:
    return instance.baton_db_url  # type: ignore[attr-defined]


def _only_run(url: str) -> uuid.UUID:
    runs = RunStore(url).list_runs()
    assert len(runs) == 1
    return runs[0].id


def test_run_completes_and_records_steps_events_and_lineage(
    dagster_instance: DagsterInstance,
) -> None:
    url = _url(dagster_instance)
    _, job = compile_text(CHAIN, url)
    result = execute(job, dagster_instance, url, inputs={"items": [1, [2, 3], {"k": "v"}]})
    assert result.success
    store = RunStore(url)
    detail = store.run_detail(_only_run(url))
    run = detail.run
    assert run.status == "completed"
    # Whole-value templates keep native types end to end.
    assert run.outputs == {"items": [1, [2, 3], {"k": "v"}], "meta": {"a": 1}, "label": "n=3"}
    assert [(s.step_id, s.status, s.attempt) for s in detail.steps] == [
        ("first", "completed", 1),
        ("second", "completed", 1),
    ]
    assert detail.steps[0].input["items"] == [1, [2, 3], {"k": "v"}]
    assert all(s.dagster_run_id == result.run_id for s in detail.steps)
    assert [e.type for e in detail.events] == [
        "run.created",
        "run.segment_started",
        "step.started",
        "step.completed",
        "step.started",
        "step.completed",
        "run.completed",
    ]
    # The Dagster run launched without a run id was tagged with the new orchestration run.
    dagster_run = dagster_instance.get_run_by_id(result.run_id)
    assert dagster_run is not None
    assert dagster_run.tags["baton/run_id"] == str(run.id)
    assert run.last_dagster_run_id == result.run_id


WHEN = """
slug: branches
name: Branches
version: 1
inputs:
  go: {type: boolean, default: false}
steps:
  - id: root
    agent: echo
    with: {v: 1}
  - id: maybe
    agent: echo
    when: "{{ inputs.go }}"
    with: {v: 2}
  - id: only_after_maybe
    agent: echo
    with: {v: "{{ steps.maybe.output.v }}"}
  - id: deeper
    agent: echo
    needs: [only_after_maybe]
  - id: mixed
    agent: echo
    with:
      root: "{{ steps.root.output.v }}"
      maybe_status: "{{ steps.maybe.status }}"
      maybe_output: "{{ steps.maybe.output }}"
  - id: literal_false
    agent: echo
    when: false
outputs:
  mixed: "{{ steps.mixed.output }}"
"""


def test_when_false_skips_the_step_and_what_depends_only_on_it(
    dagster_instance: DagsterInstance,
) -> None:
    url = _url(dagster_instance)
    _, job = compile_text(WHEN, url)
    assert execute(job, dagster_instance, url).success
    detail = RunStore(url).run_detail(_only_run(url))
    status = {s.step_id: s.status for s in detail.steps}
    assert status == {
        "root": "completed",
        "maybe": "skipped",
        "only_after_maybe": "skipped",
        "deeper": "skipped",
        "mixed": "completed",
        "literal_false": "skipped",
    }
    assert detail.run.status == "completed"
    assert detail.run.outputs == {
        "mixed": {"root": 1, "maybe_status": "skipped", "maybe_output": None}
    }
    agent_calls = [e for e in detail.events if e.type == "step.started"]
    assert {e.payload["step_id"] for e in agent_calls} == {"root", "mixed"}


def test_when_true_runs_the_branch(dagster_instance: DagsterInstance) -> None:
    url = _url(dagster_instance)
    _, job = compile_text(WHEN, url)
    assert execute(job, dagster_instance, url, inputs={"go": True}).success
    steps = RunStore(url).run_detail(_only_run(url)).steps
    assert {s.step_id: s.status for s in steps}["deeper"] == "completed"


def test_retryable_failure_is_retried_by_dagster(dagster_instance: DagsterInstance) -> None:
    url = _url(dagster_instance)
    _, job = compile_text(CHAIN, url)
    key = uuid.uuid4().hex
    agent = ScriptedAgent(key=key, fail={"second": 2})
    result = execute(job, dagster_instance, url, agent=agent, inputs={"items": [1]})
    assert result.success
    detail = RunStore(url).run_detail(_only_run(url))
    second = next(s for s in detail.steps if s.step_id == "second")
    assert (second.status, second.attempt) == ("completed", 3)
    assert CALLS[key]["second"] == 3
    failed = [e.payload for e in detail.events if e.type == "step.failed"]
    assert [f["will_retry"] for f in failed] == [True, True]


def test_exhausted_retries_fail_the_step_and_the_run(dagster_instance: DagsterInstance) -> None:
    url = _url(dagster_instance)
    _, job = compile_text(CHAIN, url)
    agent = ScriptedAgent(key=uuid.uuid4().hex, fail={"second": 5})
    result = execute(job, dagster_instance, url, agent=agent, inputs={"items": [1]})
    assert not result.success
    detail = RunStore(url).run_detail(_only_run(url))
    assert detail.run.status == "failed"
    assert detail.run.error["step_id"] == "second"
    assert "scripted failure 3" in detail.run.error["message"]
    second = next(s for s in detail.steps if s.step_id == "second")
    assert (second.status, second.attempt) == ("failed", 3)


def test_non_retryable_error_fails_at_once(dagster_instance: DagsterInstance) -> None:
    url = _url(dagster_instance)
    _, job = compile_text(CHAIN, url)
    key = uuid.uuid4().hex
    agent = ScriptedAgent(key=key, fail={"second": 5}, retryable=False)
    assert not execute(job, dagster_instance, url, agent=agent, inputs={"items": [1]}).success
    assert CALLS[key]["second"] == 1
    assert RunStore(url).get_run(_only_run(url)).status == "failed"


def test_a_new_segment_reuses_completed_steps_without_calling_their_agent(
    dagster_instance: DagsterInstance,
) -> None:
    url = _url(dagster_instance)
    _, job = compile_text(CHAIN, url)
    key = uuid.uuid4().hex
    failing = ScriptedAgent(key=key, fail={"second": 3})
    first = execute(job, dagster_instance, url, agent=failing, inputs={"items": [7]})
    assert not first.success
    run_id = _only_run(url)
    healthy = ScriptedAgent(key=key)
    # The retry claims a new segment (the run's active one) and runs the whole job again.
    retry = Lifecycle(RunStore(url), None, via="test").prepare_retry(run_id, "second", by="ops")
    segment = retry.segment
    second = job.execute_in_process(
        run_config={"inputs": {"items": [0]}},  # the stored inputs win over these
        instance=dagster_instance,
        tags=segment.all_tags,
        raise_on_error=False,
        resources={
            "baton_store": BatonStoreResource(database_url=url),
            "agent_echo": healthy,
        },
    )
    assert second.success
    assert CALLS[key]["first"] == 1  # memoized: never called again
    assert CALLS[key]["second"] == 4
    detail = RunStore(url).run_detail(run_id)
    assert detail.run.status == "completed"
    assert detail.run.outputs["items"] == [7]
    segments = [
        e.payload["dagster_run_id"] for e in detail.events if e.type == "run.segment_started"
    ]
    assert segments == [first.run_id, second.run_id]


def test_a_completed_run_cannot_be_continued(dagster_instance: DagsterInstance) -> None:
    url = _url(dagster_instance)
    _, job = compile_text(CHAIN, url)
    assert execute(job, dagster_instance, url, inputs={"items": []}).success
    again = execute(job, dagster_instance, url, run_id=str(_only_run(url)), inputs={"items": []})
    assert not again.success
    dagster_run = dagster_instance.get_run_by_id(again.run_id)
    assert dagster_run is not None and dagster_run.status == DagsterRunStatus.FAILURE


TIMEOUT = """
slug: slow
name: Slow
version: 1
steps:
  - id: nap
    agent: echo
    timeout_seconds: 0.3
    with: {x: 1}
"""


def test_timeout_fails_the_step_with_a_clear_message(dagster_instance: DagsterInstance) -> None:
    url = _url(dagster_instance)
    _, job = compile_text(TIMEOUT, url)
    agent = ScriptedAgent(key=uuid.uuid4().hex, sleep={"nap": 3})
    assert not execute(job, dagster_instance, url, agent=agent).success
    run = RunStore(url).get_run(_only_run(url))
    assert run.status == "failed"
    assert "timed out after 0.3 s" in run.error["message"]


BAD_PATH = """
slug: bad-path
name: Bad path
version: 1
steps:
  - id: a
    agent: echo
    with: {x: 1}
  - id: b
    agent: echo
    with: {y: "{{ steps.a.output.nothing_here }}"}
"""


def test_a_template_that_fails_at_run_time_fails_the_step_not_the_worker(
    dagster_instance: DagsterInstance,
) -> None:
    url = _url(dagster_instance)
    _, job = compile_text(BAD_PATH, url)
    assert not execute(job, dagster_instance, url).success
    detail = RunStore(url).run_detail(_only_run(url))
    b = next(s for s in detail.steps if s.step_id == "b")
    assert b.status == "failed"
    assert "nothing_here" in b.error["message"]
    assert detail.run.status == "failed"


BOMB = """
slug: bomb
name: Bomb
version: 1
inputs:
  text: {type: string, default: "abcdefghijklmnopqrstuvwxyz0123456789"}
steps:
  - id: a
    agent: echo
    with: {x: 1}
  - id: b
    agent: echo
    timeout_seconds: 30
    with:
      prompt: >-
        {% for p in inputs.text * 10 %}{% for q in inputs.text * 10 %}{% for r in inputs.text
        %}{% endfor %}{% endfor %}{% endfor %}
  - id: c
    agent: echo
    needs: [b]
    with: {z: 1}
"""


def test_a_template_bomb_in_with_fails_its_step_and_the_run_stays_consistent(
    dagster_instance: DagsterInstance,
) -> None:
    url = _url(dagster_instance)
    _, job = compile_text(BOMB, url)
    assert not execute(job, dagster_instance, url).success
    detail = RunStore(url).run_detail(_only_run(url))
    steps = {s.step_id: s for s in detail.steps}
    assert steps["a"].status == "completed"
    assert steps["b"].status == "failed"
    # 4.6 million iterations: the iteration limit stops it (or, on a very busy machine, the
    # render's clock); either way the message names the field and the limit.
    assert steps["b"].error["message"].startswith("with.prompt: template exceeded ")
    assert steps["b"].error["retryable"] is False
    assert steps["c"].status == "pending"
    assert detail.run.status == "failed"
    assert detail.run.error["step_id"] == "b"


OUTPUTS_READ_EARLIER_STEPS = """
slug: reads-back
name: Reads back
version: 1
steps:
  - id: a
    agent: echo
    with: {v: 1}
  - id: b
    agent: echo
    with: {v: "{{ steps.a.output.v + 1 }}"}
  - id: c
    agent: echo
    needs: [b]
    with: {v: 3}
  - id: never
    agent: echo
    needs: [a]
    when: false
outputs:
  first: "{{ steps['a'].output.v }}"
  last: "{{ steps.c.output.v }}"
"""


def test_outputs_read_an_earlier_step_and_every_step_as_a_whole(
    dagster_instance: DagsterInstance,
) -> None:
    """The finish op takes the last steps and the named ones; `steps` as a whole takes all."""
    url = _url(dagster_instance)
    _, job = compile_text(OUTPUTS_READ_EARLIER_STEPS, url)
    finish = job.graph.node_named("reads_back__finish").definition
    assert sorted(i.name for i in finish.input_defs) == [
        "after_a",
        "after_c",
        "after_never",
        "baton",
    ]
    assert execute(job, dagster_instance, url).success
    run = RunStore(url).get_run(_only_run(url))
    assert (run.status, run.outputs) == ("completed", {"first": 1, "last": 3})

    whole = OUTPUTS_READ_EARLIER_STEPS.replace("slug: reads-back", "slug: reads-all").replace(
        '  last: "{{ steps.c.output.v }}"',
        '  all: "{% for id in steps %}{{ id }}={{ steps[id].status }} {% endfor %}"',
    )
    _, job = compile_text(whole, url)
    finish = job.graph.node_named("reads_all__finish").definition
    assert sorted(i.name for i in finish.input_defs) == [
        "after_a",
        "after_b",
        "after_c",
        "after_never",
        "baton",
    ]
    assert execute(job, dagster_instance, url).success
    (run,) = [r for r in RunStore(url).list_runs() if r.orchestration == "reads-all"]
    assert run.outputs == {"first": 1, "all": "a=completed b=completed c=completed never=skipped "}
