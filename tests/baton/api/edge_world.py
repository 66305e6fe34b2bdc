"""A deployment for the edge tests, on SQLite and on Postgres, and a snapshot of everything a
request could have stored (so each refused request can be shown to have stored nothing)."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from baton.db.engine import session_scope
from baton.db.models import (
    ApprovalVote,
    HumanApproval,
    OrchestrationEvent,
    OrchestrationRun,
    WebhookInbox,
)
from tests.baton.api.world import World, build_world

# Inputs of every type, to reach values at any depth.
BAG = """
slug: acme-bag
name: Bag
version: 1
organization: acme
inputs:
  name: {type: string, required: true}
  topic: {type: array}
  meta: {type: object}
  n: {type: number}
steps:
  - id: echo
    agent: echo
    with: {name: "{{ inputs.name }}"}
"""


@dataclass(frozen=True)
class Stored:
    """Row counts of what requests write, and the launches the gateway recorded."""

    runs: int
    events: int
    decided: int
    votes: int
    inbox: int
    launches: int


def stored(w: World) -> Stored:
    with session_scope(w.settings.db_url) as s:

        def count(model: Any, *where: Any) -> int:
            return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)

        return Stored(
            runs=count(OrchestrationRun),
            events=count(OrchestrationEvent),
            decided=count(HumanApproval, HumanApproval.status != "pending"),
            votes=count(ApprovalVote),
            inbox=count(WebhookInbox),
            launches=len(w.gateway.launches),
        )


def edge_world(tmp: Path, url: str, **api: Any) -> Iterator[World]:
    library = tmp / "library"
    library.mkdir(parents=True, exist_ok=True)
    (library / "acme-bag.yaml").write_text(textwrap.dedent(BAG))
    w = build_world(tmp, url, launch_per_minute=10_000, decide_per_minute=10_000, **api)
    started = w.client
    # Server errors answer 500 here instead of raising in the test, as a real server would.
    w.client = TestClient(w.app, raise_server_exceptions=False)
    yield w
    w.client.close()
    started.__exit__(None, None, None)


def assert_refused(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    """The error shape with ``status``, naming ``field`` when given."""
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == {413: "too_large", 422: "invalid", 400: "bad_request"}[status]
    if field is not None:
        assert error["field"] == field, error
    assert error["message"]
    return error
