"""`baton run` from a plain shell: launches through Dagster, waits, prints outputs."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from baton.cli.main import main
from baton.cli.run import parse_inputs
from baton.settings import get_settings
from baton.store.service import RunStore
from tests.helpers import write_library

pytestmark = pytest.mark.slow


def _dagster_runs(run_id: str) -> list:
    with DagsterInstance.get() as instance:
        return instance.get_runs(RunsFilter(tags={"baton/run_id": run_id}))


def test_parse_inputs_reads_json_else_strings() -> None:
    assert parse_inputs(["a=1", "b=[1, 2]", "c=hello", 'd={"k": true}', "e=", "f=a=b"]) == {
        "a": 1,
        "b": [1, 2],
        "c": "hello",
        "d": {"k": True},
        "e": "",
        "f": "a=b",
    }
    with pytest.raises(ValueError):
        parse_inputs(["novalue"])


def test_run_wait_json_completes_and_is_an_ordinary_dagster_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["run", "hello", "-i", "name=Ada", "-i", "excited=true", "--wait", "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    body = json.loads(out)
    assert body["status"] == "completed"
    assert body["outputs"] == {"greeting": "Hello, Ada!"}
    runs = _dagster_runs(body["run_id"])
    assert [r.run_id for r in runs] == [body["dagster_run_id"]]
    assert runs[0].status == DagsterRunStatus.SUCCESS
    assert runs[0].job_name == "hello"
    # Launched from a code location origin, like a UI launch: the UI can open and re-run it.
    assert runs[0].remote_job_origin is not None
    steps = RunStore(get_settings().db_url).run_detail(uuid.UUID(body["run_id"]))
    assert [s.status for s in steps.steps] == ["completed", "completed"]


def test_run_wait_prints_status_and_outputs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "hello", "-i", "name=Bo", "--wait"]) == 0
    out = capsys.readouterr().out
    assert "status: completed" in out
    assert '"greeting": "Hello, Bo."' in out


def test_s_launches_digits_as_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "hello", "-s", "name=123", "-i", "excited=true", "--wait", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["status"] == "completed"
    assert body["outputs"] == {"greeting": "Hello, 123!"}


def test_a_cli_run_records_who_launched_it_like_an_api_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The OS user by default (`--as` is self-declared: the CLI is the administrator's tool).
    monkeypatch.setenv("USER", "opsadmin")
    assert main(["run", "hello", "-i", "name=Ada"]) == 0
    by_default = capsys.readouterr().out.strip()
    assert main(["run", "hello", "-i", "name=Ada", "--as", "zed"]) == 0
    declared = capsys.readouterr().out.strip()
    store = RunStore(get_settings().db_url)
    for run_id, user in ((by_default, "opsadmin"), (declared, "zed")):
        assert store.get_run(uuid.UUID(run_id)).created_by == user
        [segment] = _dagster_runs(run_id)
        # The same tags an API launch sets (baton/lifecycle.py), with the CLI named as the way.
        assert segment.tags["baton/user"] == user
        assert segment.tags["baton/launched_by"] == "cli"


def test_missing_required_input_is_refused_before_any_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["run", "hello", "--wait"]) == 1
    err = capsys.readouterr().err
    assert "missing required input 'name'" in err
    # Nothing was stored or launched: not even the database or DAGSTER_HOME was created.
    assert not (get_settings().data_dir / "baton.db").exists()
    assert not get_settings().dagster_home.exists()


def test_unknown_orchestration_and_bad_inputs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "nope"]) == 1
    assert "no orchestration 'nope'" in capsys.readouterr().err
    assert main(["run", "helo"]) == 1
    assert "did you mean 'hello'?" in capsys.readouterr().err
    # The Dagster job name is accepted for its orchestration (then the inputs are checked).
    assert main(["run", "hello__v1", "-i", "name=5"]) == 1
    assert "input 'name' must be of type string" in capsys.readouterr().err
    assert main(["run", "hello", "-i", "name=5"]) == 1
    assert "input 'name' must be of type string" in capsys.readouterr().err
    assert main(["run", "hello", "-i", "novalue"]) == 2


def test_run_without_wait_returns_the_id_and_the_run_goes_on(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["run", "hello", "-i", "name=Cy"]) == 0
    run_id = capsys.readouterr().out.strip()
    store = RunStore(get_settings().db_url)
    deadline = time.monotonic() + 60
    while store.get_run(uuid.UUID(run_id)).status != "completed":
        assert time.monotonic() < deadline, "the launched run did not complete"
        time.sleep(0.3)


def test_a_failing_run_exits_1_with_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    library = write_library(
        tmp_path / "lib",
        {
            "broken.yaml": """
        slug: broken
        name: Broken at run time
        version: 1
        steps:
          - id: a
            agent: echo
            with: {x: "{{ inputs.nothing.key }}"}
        inputs:
          nothing: {type: object}
        """
        },
    )
    monkeypatch.setenv("BATON_LIBRARY_DIR", str(library))
    get_settings.cache_clear()
    code = main(["run", "broken", "--wait", "--json"])
    body = json.loads(capsys.readouterr().out)
    assert code == 1
    assert body["status"] == "failed"
    assert "key" in body["error"]["message"]
