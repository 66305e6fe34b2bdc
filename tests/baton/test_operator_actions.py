"""Operator actions end to end on a real Dagster instance, agents at a local HTTP server.

A run whose step ``b`` fails is retried with a new input (or skipped with an output) through
the lifecycle as the CLI and the API call it; the continuation is executed for real as a new
Dagster run of the same orchestration run, and the server counts every agent call.
"""

from __future__ import annotations

import contextlib
import io
import json
import textwrap
import uuid
from typing import Any

import pytest
from dagster import DagsterInstance, RunsFilter

from baton.cli.main import main
from baton.lifecycle import Lifecycle
from baton.segments import RUN_TAG, SegmentPlan
from baton.settings import get_settings
from baton.store.service import RunStore
from tests.baton.lifecycle_world import Recorder
from tests.orchestration_defs.calls_server import CallsServer
from tests.sensors import reaper_world as world
from tests.sensors.reaper_world import server

__all__ = ["server"]  # the fixture, used by name

FLOW = textwrap.dedent(
    """
    slug: three
    name: Three
    version: 1
    steps:
      - id: a
        agent: publisher
        with: {channel: news, summary: first}
      - id: b
        needs: [a]
        agent: publisher
        retry: {max_attempts: 1}
        with: {channel: news, summary: second}
      - id: c
        needs: [b]
        agent: publisher
        with: {channel: news, summary: "after {{ steps.b.output.call }}"}
    """
)


def _execute(job: object, instance: DagsterInstance, segment: SegmentPlan) -> bool:
    result = job.execute_in_process(  # type: ignore[attr-defined]
        run_config=segment.run_config,
        tags=segment.all_tags,
        instance=instance,
        raise_on_error=False,
    )
    return bool(result.success)


def _failed_at_b(
    instance: DagsterInstance, server: CallsServer
) -> tuple[str, object, uuid.UUID, Recorder]:
    url = instance.baton_db_url  # type: ignore[attr-defined]
    job = world.setup(FLOW, url)
    server.script = [200, 400]  # a answers, b's call is refused for good
    recorder = Recorder()
    lifecycle = Lifecycle(RunStore(url), recorder, via="api")
    run_id = lifecycle.start(organization="global", slug="three", version=1, inputs={}, user="ann")
    lifecycle.launch_new(run_id, user="ann")
    (first,) = recorder.launches
    assert not _execute(job, instance, first)
    assert world.statuses(url, run_id) == {"a": "completed", "b": "failed", "c": "pending"}
    assert RunStore(url).get_run(run_id).status == "failed"
    return url, job, run_id, recorder


def _segments(instance: DagsterInstance, run_id: uuid.UUID) -> list[str]:
    records = instance.get_run_records(RunsFilter(tags={RUN_TAG: str(run_id)}))
    return [r.dagster_run.run_id for r in sorted(records, key=lambda r: r.create_timestamp)]


def _audit_shown(url: str, run_id: uuid.UUID, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The audit entries ``baton runs show ID --json`` prints for the run."""
    monkeypatch.setenv("BATON_DATABASE_URL", url)
    get_settings.cache_clear()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["runs", "show", str(run_id), "--json"]) == 0
    return list(json.loads(out.getvalue())["audit"])


@pytest.mark.slow
def test_a_failed_step_retried_with_a_new_input_continues_in_a_new_segment(
    dagster_instance: DagsterInstance, server: CallsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, job, run_id, recorder = _failed_at_b(dagster_instance, server)

    launched = Lifecycle(RunStore(url), recorder, via="cli").retry_step(
        run_id, "b", by="ops", input={"channel": "news", "summary": "fixed"}, reason="typo"
    )
    assert launched.dagster_run_id is not None
    retry = recorder.launches[-1]
    assert retry.all_tags[RUN_TAG] == str(run_id)
    assert _execute(job, dagster_instance, retry)

    assert RunStore(url).get_run(run_id).status == "completed"
    # a was not called again; b twice (the refused call, then the new input: a new call); c once.
    # c rendered b's new output: the server's answer to its third call.
    summaries = [c.body.get("summary") for c in server.calls]
    assert summaries == ["first", "second", "fixed", "after 3"]
    assert server.keys == [f"{run_id}:a:1", f"{run_id}:b:1", f"{run_id}:b:2", f"{run_id}:c:1"]
    # Two Dagster runs (segments) of the one orchestration run: the first and the retry's.
    segments = _segments(dagster_instance, run_id)
    assert len(segments) == 2 and len(set(segments)) == 2
    (entry,) = _audit_shown(url, run_id, monkeypatch)
    assert (entry["action"], entry["step_id"], entry["by"], entry["via"]) == (
        "retry",
        "b",
        "ops",
        "cli",
    )
    assert (entry["outcome"], entry["reason"], entry["run_status"]) == (
        "accepted",
        "typo",
        "failed",
    )
    assert entry["details"] == {"input": {"channel": "news", "summary": "fixed"}}


@pytest.mark.slow
def test_a_failed_step_skipped_with_an_output_hands_it_downstream(
    dagster_instance: DagsterInstance, server: CallsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, job, run_id, recorder = _failed_at_b(dagster_instance, server)

    Lifecycle(RunStore(url), recorder, via="api").skip_step(
        run_id, "b", by="ops", output={"ok": True, "call": "by hand"}, reason="sent it myself"
    )
    assert _execute(job, dagster_instance, recorder.launches[-1])

    assert RunStore(url).get_run(run_id).status == "completed"
    assert world.statuses(url, run_id) == {"a": "completed", "b": "skipped", "c": "completed"}
    # a once, b once (the refused call; the skip calls nothing), c once with b's given output.
    assert [c.body.get("summary") for c in server.calls] == ["first", "second", "after by hand"]
    assert len(_segments(dagster_instance, run_id)) == 2
    (entry,) = _audit_shown(url, run_id, monkeypatch)
    assert (entry["action"], entry["outcome"], entry["via"]) == ("skip", "accepted", "api")
    assert entry["details"] == {"output": {"ok": True, "call": "by hand"}}
