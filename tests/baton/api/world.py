"""A small deployment for API tests: two organizations, a user and token per role, runs,
approvals and a stub launcher (the one unit-level stand-in: launching a real Dagster run
costs seconds, and tests/e2e covers it)."""

from __future__ import annotations

import textwrap
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from baton.api.app import create_app
from baton.api.dagster import DagsterGateway
from baton.approvals import Approvals
from baton.db.engine import session_scope
from baton.segments import SegmentPlan
from baton.settings import ApiSettings, DagsterSettings, Settings
from baton.store.service import RunStore, StepPlan
from baton.store.tokens import TokensRepository
from baton.store.users import UsersRepository

ORGS = ("acme", "other")
ROLES = ("viewer", "operator", "approver", "admin")
FLOW = """
slug: {org}-greet
name: Greet ({org})
version: 1
organization: {org}
inputs:
  name: {{type: string, required: true}}
steps:
  - id: greet
    agent: echo
    with:
      greeting: "Hello, {{{{ inputs.name }}}}!"
  - id: review
    checkpoint:
      prompt: "Send it?"
      show: "{{{{ steps.greet.output }}}}"
      approvers: [editors]
      modifiable: {{greeting: string}}
"""
POLICY = {
    "decisions": ["continue", "retry", "abort"],
    "approvers": ["editors"],
    "required_approvals": 1,
    "modifiable": {"greeting": "string"},
    "allow_self_approval": False,
    "retry_step": "greet",
    "on_timeout": {"action": "fail"},
}


class RecordingGateway(DagsterGateway):
    """Dagster for real (instance, segments, cancel), except that launches are recorded."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.launches: list[dict[str, Any]] = []

    def warm(self) -> None:
        """Nothing to warm: launches are only recorded."""

    def launch(self, segment: SegmentPlan) -> str:
        self.launches.append(
            {
                "job_name": segment.job_name,
                "run_config": segment.run_config,
                "tags": segment.all_tags,
                "segment": segment,
            }
        )
        return f"recorded-{len(self.launches)}"


def write_flows(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for org in ORGS:
        (folder / f"{org}-greet.yaml").write_text(textwrap.dedent(FLOW.format(org=org)))
    return folder


def api_settings(tmp: Path, url: str, **api: Any) -> Settings:
    """Settings of a test deployment at ``tmp`` with Baton's tables at ``url``."""
    return Settings(
        data_dir=tmp / "data",
        database_url=url,
        library_dir=str(write_flows(tmp / "library")),
        dagster=DagsterSettings(home=tmp / "dagster"),
        api=ApiSettings(**api),
    )


@dataclass
class World:
    """The app, its client, and what the tests act on."""

    app: FastAPI
    client: TestClient
    settings: Settings
    tokens: dict[tuple[str, str], str] = field(default_factory=dict)
    ids: dict[str, set[str]] = field(default_factory=lambda: {o: set() for o in ORGS})

    @property
    def store(self) -> RunStore:
        return RunStore(self.settings.db_url)

    @property
    def gateway(self) -> RecordingGateway:
        gateway: RecordingGateway = self.app.state.dagster
        return gateway

    def headers(self, org: str, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[(org, role)]}"}

    def add_user(self, org: str, name: str, role: str, groups: list[str]) -> str:
        with session_scope(self.settings.db_url) as s:
            user = UsersRepository(s).upsert(organization=org, name=name, groups=groups)
            _, raw = TokensRepository(s).create(user, role=role, name=f"{name} test")
        return raw

    def _run(self, org: str, created_by: str = "launcher") -> uuid.UUID:
        store = self.store
        run_id = store.create_run(
            organization=org,
            slug=f"{org}-greet",
            version=1,
            inputs={"name": "Ada"},
            created_by=created_by,
        )
        store.begin_segment(
            run_id=run_id,
            dagster_run_id="segment-1",
            steps=[StepPlan("greet", "agent", "echo"), StepPlan("review", "checkpoint", None)],
        )
        self.ids[org].add(str(run_id))
        return run_id

    def waiting_run(self, org: str = "acme", created_by: str = "launcher") -> tuple[str, str]:
        """A run paused at its checkpoint; returns (run id, approval id)."""
        run_id = self._run(org, created_by)
        store = self.store
        store.start_step(run_id, "greet", input={"greeting": "Hi"}, dagster_run_id="segment-1")
        store.complete_step(run_id, "greet", output={"greeting": "Hello, Ada!"})
        approval = Approvals(store).request(
            run_id=run_id,
            step_id="review",
            prompt="Send it?",
            show={"greeting": "Hello, Ada!"},
            policy=POLICY,
            timeout=timedelta(hours=1),
            dagster_run_id="segment-1",
        )
        self.ids[org].add(str(approval.id))
        return str(run_id), str(approval.id)

    def failed_run(self, org: str = "acme") -> str:
        """A run whose first step failed."""
        run_id = self._run(org)
        store = self.store
        store.start_step(run_id, "greet", input={"greeting": "Hi"}, dagster_run_id="segment-1")
        store.fail_step(run_id, "greet", error={"message": "agent down"}, will_retry=False)
        store.fail_run(run_id, {"message": "step greet failed"})
        return str(run_id)


def build_world(tmp: Path, url: str, **api: Any) -> World:
    """Start the app (lifespan included) with a user and token per (organization, role)."""
    settings = api_settings(tmp, url, **api)
    app = create_app(settings)
    app.state.dagster = RecordingGateway(settings)
    client = TestClient(app)
    client.__enter__()
    world = World(app, client, settings)
    for org in ORGS:
        for role in ROLES:
            world.tokens[(org, role)] = world.add_user(org, f"{org}-{role}", role, ["editors"])
    return world
