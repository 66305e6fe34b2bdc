"""Checkpoints with the real processes: `baton up` (webserver + daemon), the CLI deciding, the
daemon's approval sensor resuming the run by itself. And: while 20 runs wait at checkpoints,
no Dagster run is in progress and no process waits for them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from baton.settings import get_settings
from baton.store.service import RunStore
from baton.warm_launcher import WORKER_TAG
from tests.e2e.deploy import graphql, launch

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
BATON = str(Path(sys.executable).with_name("baton"))
ACTIVE = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")
RUNS_QUERY = """{ runsOrError { ... on Runs { results { runId status tags { key value } } } } }"""


def _baton(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BATON, *args], capture_output=True, text=True, timeout=120, env=os.environ.copy()
    )


def _wait_status(run_id: uuid.UUID, statuses: set[str], seconds: float) -> str:
    store = RunStore(get_settings().db_url)
    deadline = time.monotonic() + seconds
    while True:
        status = store.get_run(run_id).status
        if status in statuses or time.monotonic() > deadline:
            return status
        time.sleep(0.5)


def _json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_pause_decide_from_the_cli_and_it_resumes_the_run(deployment: str) -> None:
    assert _baton("users", "add", "ann", "--group", "editors").returncode == 0
    body = _json(
        _baton(
            "run", "content-review", "-i", "topic=release notes", "--as", "zed", "--wait", "--json"
        )
    )
    assert body["status"] == "awaiting_approval"
    [approval_id] = body["approvals"]
    shown = _json(_baton("approvals", "show", approval_id, "--json"))
    assert shown["prompt"] == "Publish 'Release Notes'?"
    decided = _baton(
        "approvals",
        "decide",
        approval_id,
        "--as",
        "ann",
        "--decision",
        "continue",
        "--set",
        "title=Release notes, v2",
        "--comment",
        "tightened",
    )
    assert decided.returncode == 0, decided.stderr
    # The CLI launched the next segment itself (the fast path), not the daemon's sensor.
    assert "the run resumes in Dagster run" in decided.stdout, decided.stdout
    again = _baton("approvals", "decide", approval_id, "--as", "ann", "--decision", "abort")
    assert again.returncode == 1 and "a decision is recorded once" in again.stderr
    run_id = uuid.UUID(body["run_id"])
    assert _wait_status(run_id, {"completed", "failed", "aborted"}, 90) == "completed"
    run = RunStore(get_settings().db_url).get_run(run_id)
    assert run.outputs["post"]["title"] == "Release notes, v2"
    assert run.outputs["approved_by"] == "ann"
    detail = _json(_baton("runs", "show", str(run_id), "--json"))
    segments = detail["segments"]
    assert len(segments) == 2 and all(s["status"] == "SUCCESS" for s in segments)
    audit = _json(_baton("approvals", "show", approval_id, "--json"))
    assert audit["diff"] == {"title": {"from": "Release Notes", "to": "Release notes, v2"}}
    assert (audit["decided_by"], audit["comment"]) == ("ann", "tightened")


def test_twenty_waiting_runs_hold_no_run_and_no_process(deployment: str) -> None:
    for i in range(20):
        launched = launch(deployment, "content_review", {"inputs": {"topic": f"post {i}"}})
        assert launched["__typename"] == "LaunchRunSuccess", launched
    store = RunStore(get_settings().db_url)
    deadline = time.monotonic() + 180
    while True:
        waiting = store.list_runs(status="awaiting_approval", limit=100)
        if len(waiting) == 20 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert len(waiting) == 20
    time.sleep(2)  # let the last run workers exit
    runs = graphql(deployment, RUNS_QUERY)["runsOrError"]["results"]
    assert len(runs) == 20
    assert [r for r in runs if r["status"] in ACTIVE] == []
    workers = subprocess.run(["pgrep", "-f", "execute_run"], capture_output=True, text=True)
    assert workers.stdout.strip() == "", "a run worker is still alive"
    # Warm run workers are forks of the launcher's zygote: their pids are in a tag.
    for run in runs:
        tags = {t["key"]: t["value"] for t in run["tags"]}
        if WORKER_TAG in tags:
            pid = int(json.loads(tags[WORKER_TAG])["pid"])
            assert not _alive(pid), f"run worker {pid} of {run['runId']} is still alive"


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting to be reaped is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")
