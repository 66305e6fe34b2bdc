"""Events: JSON pages, and Server-Sent Events from a real uvicorn server where a client that
disconnects and resumes with Last-Event-ID misses nothing and sees nothing twice."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from tests.baton.api.world import World, build_world
from tests.e2e.deploy import free_port


def test_json_pages_in_order_scoped_to_the_organization(world: World) -> None:
    for _ in range(3):
        world.waiting_run()
        world.waiting_run("other")
    headers = world.headers("acme", "viewer")
    ids: list[int] = []
    cursor = None
    while True:
        params = {"limit": 4, **({"cursor": cursor} if cursor else {})}
        page = world.client.get("/api/v1/events", params=params, headers=headers).json()
        ids += [e["id"] for e in page["items"]]
        assert all(e["run_id"] in world.ids["acme"] for e in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert ids == sorted(set(ids)) and len(ids) == 3 * 5  # 5 events per paused run


@pytest.fixture
def served(tmp_path: Path, sqlite_db: str) -> Iterator[tuple[World, str]]:
    """The app on a real uvicorn server on 127.0.0.1, in a thread."""
    world = build_world(tmp_path, sqlite_db, events_poll_seconds=0.05, heartbeat_seconds=0.3)
    port = free_port()
    # The world's client already ran the app's startup; the server need not run it again.
    server = uvicorn.Server(
        uvicorn.Config(world.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield world, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        world.client.__exit__(None, None, None)


def _read(
    url: str, headers: dict[str, str], count: int, comments: list[str] | None = None
) -> list[dict]:
    """Read ``count`` events from the stream, then hang up."""
    events: list[dict] = []
    current: dict = {}
    with httpx.stream(
        "GET", url, headers={"Accept": "text/event-stream", **headers}, timeout=10
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith(":") and comments is not None:
                comments.append(line)
            elif line.startswith(("id:", "event:", "data:")):
                key, _, value = line.partition(": ")
                current[key] = value
            elif line == "" and "id" in current:
                events.append(current)
                current = {}
                if len(events) == count:
                    break
    return events


def test_sse_resume_with_last_event_id_misses_nothing(served: tuple[World, str]) -> None:
    world, base = served
    for _ in range(2):
        world.waiting_run()
    headers = world.headers("acme", "viewer")
    url = f"{base}/api/v1/events"

    first = _read(url, headers, 5)
    assert world.app.state.open_streams in (0, 1)
    deadline = time.monotonic() + 5
    while world.app.state.open_streams:  # the stream ends once the client is gone
        assert time.monotonic() < deadline, "the event stream outlived its client"
        time.sleep(0.05)

    # More happens while the client is away, in both organizations.
    world.waiting_run()
    world.waiting_run("other")
    last = first[-1]["id"]
    rest = _read(url, {**headers, "Last-Event-ID": last}, 3 * 5 - 5)

    ids = [int(e["id"]) for e in first + rest]
    assert ids == sorted(set(ids))  # in order, none twice
    page = world.client.get("/api/v1/events", params={"limit": 200}, headers=headers).json()
    assert ids == [e["id"] for e in page["items"]]  # none missed
    for e in first + rest:
        body = json.loads(e["data"])
        assert body["type"] == e["event"] and str(body["id"]) == e["id"]
        assert body["run_id"] in world.ids["acme"]


def test_run_stream_has_only_that_run_and_sends_heartbeats(served: tuple[World, str]) -> None:
    world, base = served
    run_id, _ = world.waiting_run()
    world.waiting_run()
    comments: list[str] = []
    events = _read(
        f"{base}/api/v1/runs/{run_id}/events", world.headers("acme", "viewer"), 5, comments
    )
    assert {json.loads(e["data"])["run_id"] for e in events} == {run_id}
    heartbeat = _read_comment(f"{base}/api/v1/runs/{run_id}/events", world, events[-1]["id"])
    assert heartbeat == ": heartbeat"


def _read_comment(url: str, world: World, last: str) -> str:
    headers = {
        "Accept": "text/event-stream",
        "Last-Event-ID": last,
        **world.headers("acme", "viewer"),
    }
    with httpx.stream("GET", url, headers=headers, timeout=10) as response:
        for line in response.iter_lines():
            if line.startswith(": "):
                return line
    raise AssertionError("no heartbeat")


def test_sse_refuses_a_bad_last_event_id_and_other_organizations(
    served: tuple[World, str],
) -> None:
    world, base = served
    run_id, _ = world.waiting_run()
    sse = {"Accept": "text/event-stream"}
    bad = httpx.get(
        f"{base}/api/v1/events",
        headers={**sse, "Last-Event-ID": "x", **world.headers("acme", "viewer")},
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "Last-Event-ID"
    foreign = httpx.get(
        f"{base}/api/v1/runs/{run_id}/events", headers={**sse, **world.headers("other", "admin")}
    )
    assert foreign.status_code == 404
    anonymous = httpx.get(f"{base}/api/v1/events", headers=sse)
    assert anonymous.status_code == 401


def _child_with_event(world: World, parent_id: str, index: int) -> str:
    """A child run of ``parent_id`` (as the children module creates them) and one event."""
    from baton.db.models import OrchestrationRun
    from baton.store.definitions import DefinitionsRepository
    from baton.store.events import EventsRepository
    from baton.store.runs import RunsRepository

    with world.store.session() as s:
        parent = s.get(OrchestrationRun, uuid.UUID(parent_id))
        assert parent is not None
        definition = DefinitionsRepository(s).get_by_id(parent.definition_id)
        assert definition is not None
        child = RunsRepository(s).create(
            definition, inputs={}, parent=parent, parent_step_id="periods"
        )
        child.parent_step_index = index
        s.flush()
        EventsRepository(s).append(
            organization=parent.organization,
            type="run.created",
            run_id=child.id,
            payload={"parent_run_id": parent_id, "index": index},
        )
        return str(child.id)


def test_tree_stream_carries_every_run_below_the_root(served: tuple[World, str]) -> None:
    """GET /api/v1/runs/{id}/tree/events with a real client: the root's, its child's and its
    grandchild's events, one created while the stream is open; never another tree's."""
    world, base = served
    root, _ = world.waiting_run()
    child = _child_with_event(world, root, 0)
    grandchild = _child_with_event(world, child, 0)
    other, _ = world.waiting_run()
    _child_with_event(world, other, 0)
    headers = world.headers("acme", "viewer")
    page = world.client.get(f"/api/v1/runs/{root}/tree/events", headers=headers).json()
    before = len(page["items"])
    assert {e["run_id"] for e in page["items"]} == {root, child, grandchild}
    got: list[list[dict]] = []
    reader = threading.Thread(
        target=lambda: got.append(
            _read(f"{base}/api/v1/runs/{root}/tree/events", headers, before + 1)
        )
    )
    reader.start()
    deadline = time.monotonic() + 10
    while not getattr(world.app.state, "open_streams", 0):  # open: now a new child appears
        assert time.monotonic() < deadline, "the tree stream did not open"
        time.sleep(0.05)
    late = _child_with_event(world, grandchild, 3)
    reader.join(15)
    [events] = got
    run_ids = [json.loads(e["data"])["run_id"] for e in events]
    assert set(run_ids) == {root, child, grandchild, late} and run_ids[-1] == late
    assert [int(e["id"]) for e in events] == sorted(int(e["id"]) for e in events)
    missing = world.client.get(f"/api/v1/runs/{uuid.uuid4()}/tree/events", headers=headers)
    assert missing.status_code == 404
    foreign = world.client.get(
        f"/api/v1/runs/{root}/tree/events", headers=world.headers("other", "viewer")
    )
    assert foreign.status_code == 404
