"""The deployment started by `baton up` on a free port, and GraphQL helpers."""

from __future__ import annotations

import socket
import subprocess
import time
from typing import Any

import httpx

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def graphql(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = httpx.post(
        f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30
    )
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def wait_for_jobs(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, "baton up exited early"
        try:
            data = graphql(url, JOBS_QUERY)["repositoriesOrError"]
            if data.get("nodes"):
                return
        except (httpx.HTTPError, AssertionError):
            pass
        time.sleep(1)
    raise AssertionError("the Dagster UI did not come up with Baton's code location")


def launch(url: str, job: str, run_config: dict[str, Any]) -> dict[str, Any]:
    params = {
        "selector": {
            "repositoryLocationName": "baton",
            "repositoryName": "__repository__",
            "jobName": job,
        },
        "runConfigData": run_config,
    }
    return graphql(url, LAUNCH, {"params": params})["launchRun"]
