"""`baton up` also serves the HTTP API: /healthz answers, and a run launched with
POST /api/v1/runs is an ordinary Dagster run that the UI shows and that completes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from baton.settings import get_settings
from tests.e2e.deploy import RUN_QUERY, graphql

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def _api_url() -> str:
    settings = get_settings()
    return f"http://{settings.api.host}:{settings.api.port}"


def _wait_healthy(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError("the API did not answer /healthz")


def _token() -> str:
    baton = str(Path(sys.executable).with_name("baton"))
    subprocess.run([baton, "users", "add", "ops"], check=True, capture_output=True)
    out = subprocess.run(
        [baton, "tokens", "create", "--user", "ops", "--role", "operator"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.splitlines()[0].strip()


def test_the_api_launches_an_ordinary_dagster_run(deployment: str) -> None:
    api = _api_url()
    _wait_healthy(api)
    assert httpx.get(f"{api}/readyz", timeout=10).json()["status"] == "ok"
    headers = {"Authorization": f"Bearer {_token()}"}

    launched = httpx.post(
        f"{api}/api/v1/runs",
        json={"orchestration": "hello", "inputs": {"name": "API"}},
        headers=headers,
        timeout=60,
    )
    assert launched.status_code == 202, launched.text
    run_id = launched.json()["run_id"]

    deadline = time.monotonic() + 120
    while True:
        detail = httpx.get(f"{api}/api/v1/runs/{run_id}", headers=headers, timeout=30).json()
        if detail["status"] in ("completed", "failed", "aborted"):
            break
        assert time.monotonic() < deadline, f"run stuck in {detail['status']}"
        time.sleep(1)
    assert detail["status"] == "completed", detail
    assert detail["outputs"] == {"greeting": "Hello, API."}
    assert detail["created_by"] == "ops"
    (segment,) = detail["segments"]
    # The Dagster UI knows the same run, tagged with the orchestration run.
    run = graphql(deployment, RUN_QUERY, {"id": segment["dagster_run_id"]})["runOrError"]
    assert run["status"] == "SUCCESS"
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert tags["baton/run_id"] == run_id
    assert tags["baton/launched_by"] == "api"
