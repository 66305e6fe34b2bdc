"""The webhook fast path on a real Dagster instance: the process that accepted a webhook
launches its runs once, the webhook sensor launches only what it did not (a failed launch at
once, a claim left unstarted after its lease), and the two racing start each run once."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from dagster import RunRequest
from sqlalchemy import update

from baton import segments
from baton.db.engine import session_scope
from baton.db.models import OrchestrationRun, utcnow
from baton.lifecycle import Lifecycle
from baton.segments import SegmentPlan
from baton.store.service import RunStore
from baton.webhooks.claims import fast_segment, sensor_segment
from sensors.webhooks import webhook_run_id
from tests.sensors.test_webhooks import OPENED, Harness, harness

__all__ = ["harness"]  # the fixture, shared with the sensor's own tests


@dataclass
class DagsterLauncher:
    """Launches a segment as the API's gateway does, but in this process: the plan's request
    executed on the test's Dagster instance (same job, config and tags)."""

    harness: Harness
    fail_with: str | None = None
    launched: list[SegmentPlan] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def launch(self, segment: SegmentPlan) -> str:
        if self.fail_with:
            raise RuntimeError(self.fail_with)
        with self.lock:
            self.launched.append(segment)
        result = self.harness.run(segments.run_request(segment))
        return str(result.run_id)

    def settle(
        self, run_id: uuid.UUID, status: str, *, last_dagster_run_id: str | None, reason: str
    ) -> None:
        return None


def _fast_path(harness: Harness, launcher: DagsterLauncher, webhook_id: str) -> Any:
    harness.store(webhook_id, OPENED)
    [item] = [i for i in harness.inbox.list() if i.webhook_id == webhook_id]
    return Lifecycle(RunStore(harness.url), launcher, via="api").start_from_webhook(item.id)


def _event_types(harness: Harness, run_id: uuid.UUID) -> list[str]:
    return [e.type for e in RunStore(harness.url).run_detail(run_id).events]


def test_the_accepting_process_starts_the_run_and_the_sensor_requests_nothing(
    harness: Harness,
) -> None:
    launcher = DagsterLauncher(harness)
    [launched] = _fast_path(harness, launcher, "fast_1")
    run_id = webhook_run_id("github", "fast_1", "pr-review")
    assert launched.dagster_run_id is not None
    [segment] = launcher.launched
    assert segment.segment_id == fast_segment(run_id)
    assert segment.tags["baton/launched_by"] == "api"
    run = RunStore(harness.url).get_run(run_id)
    assert run.status == "completed" and run.outputs == {"title": "Fix the docs"}
    [item] = harness.inbox.list()
    assert item.status == "processed"
    assert item.result["fast_path"]["started"] == {"pr-review": launched.dagster_run_id}
    requests, _, _ = harness.tick()
    assert requests == []  # the Dagster run of the fast segment exists: nothing to launch
    assert "segment.launched" in _event_types(harness, run_id)


def test_a_failed_launch_hands_the_run_to_the_sensor_at_once_with_its_reason(
    harness: Harness,
) -> None:
    launcher = DagsterLauncher(harness, fail_with="the code server is down")
    [launched] = _fast_path(harness, launcher, "fast_2")
    assert launched.dagster_run_id is None
    run_id = webhook_run_id("github", "fast_2", "pr-review")
    assert RunStore(harness.url).get_run(run_id).segment_id == sensor_segment(run_id)
    [event] = [
        e
        for e in RunStore(harness.url).run_detail(run_id).events
        if e.type == "segment.launch_failed"
    ]
    assert "the code server is down" in event.payload["reason"]
    [item] = harness.inbox.list()
    assert item.status == "pending" and "launch failed" in item.result["waiting"][0]
    [request], _, _ = harness.tick()
    assert request.tags["baton/segment"] == sensor_segment(run_id)
    assert harness.run(request).success
    assert RunStore(harness.url).get_run(run_id).status == "completed"


def _claim_without_launch(harness: Harness, webhook_id: str, age_seconds: float) -> uuid.UUID:
    """A fast-path claim whose process died before launching: the run row, nothing in Dagster."""

    class Dies(DagsterLauncher):
        def launch(self, segment: SegmentPlan) -> str:
            raise SystemExit("the API process died mid-launch")

    with pytest.raises(SystemExit):
        _fast_path(harness, Dies(harness), webhook_id)
    run_id = webhook_run_id("github", webhook_id, "pr-review")
    with session_scope(harness.url) as s:
        s.execute(
            update(OrchestrationRun)
            .where(OrchestrationRun.id == run_id)
            .values(created_at=utcnow() - timedelta(seconds=age_seconds))
        )
    return run_id


def test_a_claim_within_its_lease_waits_and_says_when_it_is_taken_over(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATON_SENSORS__CLAIM_LEASE_SECONDS", "60")
    run_id = _claim_without_launch(harness, "fast_3", age_seconds=5)
    requests, _, skip = harness.tick()
    assert requests == []
    assert "fast-path claim" in skip
    [item] = harness.inbox.list()
    [why] = item.result["waiting"]
    # The ages count from the claim (5 s ago when the test made it, more on a slow machine).
    match = re.search(r"claimed by the fast path (\d+) s ago.* takes it over (\d+) s from now", why)
    assert match is not None, why
    age, left = int(match[1]), int(match[2])
    assert 5 <= age < 60 and abs(age + left - 60) <= 1, why
    assert RunStore(harness.url).get_run(run_id).segment_id == fast_segment(run_id)


def test_a_claim_left_unstarted_past_its_lease_is_taken_over_with_an_event(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATON_SENSORS__CLAIM_LEASE_SECONDS", "60")
    run_id = _claim_without_launch(harness, "fast_4", age_seconds=120)
    [request], _, _ = harness.tick()
    assert request.tags["baton/segment"] == sensor_segment(run_id)
    assert "segment.launch_taken_over" in _event_types(harness, run_id)
    assert harness.run(request).success
    assert RunStore(harness.url).get_run(run_id).status == "completed"
    # The dead process's segment, were it to start now, finds another segment active.
    late = RunRequest(
        run_key=None,
        job_name=request.job_name,
        run_config=request.run_config,
        tags={**request.tags, "baton/segment": fast_segment(run_id)},
    )
    harness.run(late)
    assert RunStore(harness.url).get_run(run_id).status == "completed"
    assert [r.id for r in RunStore(harness.url).list_runs(limit=10)] == [run_id]


def _race(first: Callable[[], Any], second: Callable[[], Any]) -> tuple[Any, Any]:
    results: list[Any] = [None, None]
    barrier = threading.Barrier(2)

    def call(index: int, fn: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[index] = fn()
        except Exception as exc:  # surfaced by the caller's asserts
            results[index] = exc

    threads = [threading.Thread(target=call, args=(i, f)) for i, f in enumerate((first, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results[0], results[1]


def test_twenty_webhooks_racing_a_sensor_tick_start_each_run_once(harness: Harness) -> None:
    for n in range(20):
        webhook_id = f"race_{n}"
        harness.store(webhook_id, OPENED)
        [item] = [i for i in harness.inbox.list() if i.webhook_id == webhook_id]
        launcher = DagsterLauncher(harness)
        lifecycle = Lifecycle(RunStore(harness.url), launcher, via="api")
        fast, ticked = _race(partial(lifecycle.start_from_webhook, item.id), harness.tick)
        assert not isinstance(fast, Exception), fast
        assert not isinstance(ticked, Exception), ticked
        requests = [r for r in ticked[0] if r.tags["baton/webhook_id"] == webhook_id]
        run_id = webhook_run_id("github", webhook_id, "pr-review")
        assert len(launcher.launched) + len(requests) == 1, (launcher.launched, requests)
        for request in requests:
            assert harness.run(request).success
        assert RunStore(harness.url).get_run(run_id).status == "completed"
    assert len(RunStore(harness.url).list_runs(limit=100)) == 20
