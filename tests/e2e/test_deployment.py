"""The README's first command: `baton up` serves the Dagster UI with one job per library file,
and a run launched the way the launchpad launches it (GraphQL `launchRun`, queued, picked up
by the daemon) completes with its steps in Baton's tables."""

from __future__ import annotations

import time
import uuid

import pytest

from baton.settings import get_settings
from baton.store.service import RunStore
from tests.e2e.deploy import JOBS_QUERY, RUN_QUERY, graphql, launch

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def test_ui_lists_one_job_per_library_file_and_a_launchpad_run_completes(
    deployment: str,
) -> None:
    repos = graphql(deployment, JOBS_QUERY)["repositoriesOrError"]["nodes"]
    assert [r["location"]["name"] for r in repos] == ["baton"]
    jobs = {j["name"] for j in repos[0]["jobs"]} - {"__ASSET_JOB"}
    library = get_settings().library_dirs[0]
    expected = {p.stem.replace("-", "_") for p in library.glob("*.yaml")}
    # An example with compensable steps has its compensation job too.
    expected |= {
        p.stem.replace("-", "_") + "__compensate"
        for p in library.glob("*.yaml")
        if "\n    compensate:" in p.read_text()
    }
    assert jobs == expected

    launched = launch(deployment, "hello", {"inputs": {"name": "Launchpad"}})
    assert launched["__typename"] == "LaunchRunSuccess", launched
    dagster_run_id = launched["run"]["runId"]
    deadline = time.monotonic() + 90
    while True:
        run = graphql(deployment, RUN_QUERY, {"id": dagster_run_id})["runOrError"]
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
    launched = launch(deployment, "hello", {"inputs": {}})
    assert launched["__typename"] == "RunConfigValidationInvalid"
    assert any("name" in e["message"] for e in launched["errors"])
