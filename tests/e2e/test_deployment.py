"""The README's first command: `baton up` serves the Dagster UI with one job per library file,
and a run launched the way the launchpad launches it (GraphQL `launchRun`, queued, picked up
by the daemon) completes with its steps in Baton's tables."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from baton.settings import get_settings
from baton.store.service import RunStore

pytestmark = pytest.mark.slow

JOBS_QUERY = """
{ repositoriesOrError { __typename
    ... on RepositoryConnection { nodes { name location { name } jobs { name } } } } }
"""
LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PythonError { message }
  }
}
"""
RUN_QUERY = """
query Run($id: ID!) { runOrError(runId: $id) { __typename
    ... on Run { status tags { key value } } } }
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def deployment(isolated_settings: Path) -> Iterator[str]:
    """`baton up` on a free port; yields the UI's base URL once the code location loaded."""
    port = _free_port()
    baton = Path(sys.executable).with_name("baton")
    log = (isolated_settings.parent / "baton-up.log").open("w")
    proc = subprocess.Popen(
        [str(baton), "up", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=os.environ.copy(),
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_jobs(url, proc)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()


def _graphql(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = httpx.post(
        f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30
    )
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def _wait_for_jobs(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, "baton up exited early"
        try:
            data = _graphql(url, JOBS_QUERY)["repositoriesOrError"]
            if data.get("nodes"):
                return
        except (httpx.HTTPError, AssertionError):
            pass
        time.sleep(1)
    raise AssertionError("the Dagster UI did not come up with Baton's code location")


def _launch(url: str, job: str, run_config: dict[str, Any]) -> dict[str, Any]:
    params = {
        "selector": {
            "repositoryLocationName": "baton",
            "repositoryName": "__repository__",
            "jobName": job,
        },
        "runConfigData": run_config,
    }
    return _graphql(url, LAUNCH, {"params": params})["launchRun"]


def test_ui_lists_one_job_per_library_file_and_a_launchpad_run_completes(
    deployment: str,
) -> None:
    repos = _graphql(deployment, JOBS_QUERY)["repositoriesOrError"]["nodes"]
    assert [r["location"]["name"] for r in repos] == ["baton"]
    jobs = {j["name"] for j in repos[0]["jobs"]} - {"__ASSET_JOB"}
    library = get_settings().library_dirs[0]
    expected = {p.stem.replace("-", "_") for p in library.glob("*.yaml")}
    assert jobs == expected

    launched = _launch(deployment, "hello", {"inputs": {"name": "Launchpad"}})
    assert launched["__typename"] == "LaunchRunSuccess", launched
    dagster_run_id = launched["run"]["runId"]
    deadline = time.monotonic() + 90
    while True:
        run = _graphql(deployment, RUN_QUERY, {"id": dagster_run_id})["runOrError"]
        if run["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        assert time.monotonic() < deadline, f"run stuck in {run['status']}"
        time.sleep(0.5)
    assert run["status"] == "SUCCESS"
    tags = {t["key"]: t["value"] for t in run["tags"]}
    run_id = uuid.UUID(tags["baton/run_id"])
    detail = RunStore(get_settings().db_url).run_detail(run_id)
    assert detail.run.status == "completed"
    assert detail.run.outputs == {"greeting": "Hello, Launchpad."}
    assert [(s.step_id, s.status) for s in detail.steps] == [
        ("greet", "completed"),
        ("report", "completed"),
    ]
    assert all(s.dagster_run_id == dagster_run_id for s in detail.steps)


def test_launchpad_refuses_a_missing_required_input_before_the_run(deployment: str) -> None:
    launched = _launch(deployment, "hello", {"inputs": {}})
    assert launched["__typename"] == "RunConfigValidationInvalid"
    assert any("name" in e["message"] for e in launched["errors"])
