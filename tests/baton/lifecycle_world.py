"""A store-level world for lifecycle tests: a compiled job, users, runs paused at a checkpoint,
the real approval sensor on a real Dagster instance, and a launcher that records segments."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from dagster import DagsterInstance, SensorResult, build_sensor_context, instance_for_test

from baton.approvals import Approvals
from baton.lifecycle import Lifecycle
from baton.segments import APPROVAL_TAG, SegmentPlan
from baton.store.service import RunStore, StepPlan
from orchestration_defs.compiler.resources import BatonStoreResource
from sensors.approvals import build_approval_sensor
from tests.checkpoint_helpers import users
from tests.helpers import compile_text

FLOW = """
slug: review
name: Review
version: 1
inputs:
  topic: {type: string, required: true}
steps:
  - id: draft
    agent: echo
    with: {title: "{{ inputs.topic }}"}
  - id: review
    needs: [draft]
    checkpoint:
      prompt: "Publish?"
      show: "{{ steps.draft.output }}"
      approvers: [editors]
  - id: publish
    needs: [review]
    agent: echo
    with: {post: "{{ steps.review.output.value }}"}
"""
PLAN = [StepPlan("draft", "agent", "echo"), StepPlan("review", "checkpoint", None)]


@dataclass
class Recorder:
    """Counts the segments asked of Dagster, per approval (thread-safe)."""

    launches: list[SegmentPlan] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    fail_with: str | None = None

    settled: list[tuple[uuid.UUID, str]] = field(default_factory=list)

    def settle(
        self, run_id: uuid.UUID, status: str, *, last_dagster_run_id: str | None, reason: str
    ) -> None:
        with self.lock:
            self.settled.append((run_id, status))

    def launch(self, segment: SegmentPlan) -> str:
        if self.fail_with:
            raise RuntimeError(self.fail_with)
        with self.lock:
            self.launches.append(segment)
            return f"recorded-{len(self.launches)}"


@dataclass
class World:
    url: str
    instance: DagsterInstance
    job: Any
    recorder: Recorder

    @property
    def store(self) -> RunStore:
        return RunStore(self.url)

    def lifecycle(self, via: str = "api") -> Lifecycle:
        return Lifecycle(self.store, self.recorder, via=via)

    def waiting(self) -> tuple[uuid.UUID, uuid.UUID]:
        """A run paused at its checkpoint, as its first segment leaves it."""
        store = self.store
        run_id = store.create_run(
            organization="global", slug="review", version=1, inputs={"topic": "t"}, created_by="zed"
        )
        store.begin_segment(run_id=run_id, dagster_run_id="dag-1", steps=PLAN)
        store.start_step(run_id, "draft", input={}, dagster_run_id="dag-1")
        store.complete_step(run_id, "draft", output={"title": "t"})
        approval = Approvals(store).request(
            run_id=run_id,
            step_id="review",
            prompt="Publish?",
            show={"title": "t"},
            policy={
                "decisions": ["continue", "retry", "abort"],
                "approvers": ["editors"],
                "required_approvals": 1,
                "allow_self_approval": False,
                "modifiable": {},
                "retry_step": "draft",
                "on_timeout": {"action": "fail"},
            },
            timeout=None,
            dagster_run_id="dag-1",
        )
        return run_id, approval.id

    def tick(self, job_names: list[str] | None = None) -> list[Any]:
        """One evaluation of the approval sensor; its run requests."""
        names = [self.job.name] if job_names is None else job_names
        sensor = build_approval_sensor(names, [self.job])
        context = build_sensor_context(
            instance=self.instance,
            resources={"baton_store": BatonStoreResource(database_url=self.url)},
        )
        result = sensor(context)
        self.last_result = result
        return list(result.run_requests or []) if isinstance(result, SensorResult) else []

    def segments_for(self, approval_id: uuid.UUID, requests: list[Any]) -> int:
        fast = [s for s in self.recorder.launches if s.tags[APPROVAL_TAG] == str(approval_id)]
        slow = [r for r in requests if r.tags[APPROVAL_TAG] == str(approval_id)]
        return len(fast) + len(slow)


def make_world(db_url: str) -> Iterator[World]:
    _, job = compile_text(FLOW, db_url)
    users(db_url, ("ann", ["editors"]), ("bob", ["editors"]))
    with instance_for_test() as instance:
        yield World(db_url, instance, job, Recorder())
