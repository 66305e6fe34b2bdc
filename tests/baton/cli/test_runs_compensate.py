"""``baton runs compensate ID`` refusals and the compensation in ``baton runs show``."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from dagster import DagsterInstance

from baton.cli.main import main
from baton.dagster_home import ensure_dagster_home
from baton.settings import get_settings
from baton.store.service import RunStore
from tests.baton.test_compensation import undoable_run


@pytest.fixture
def url(sqlite_db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("BATON_DATABASE_URL", sqlite_db)
    get_settings.cache_clear()
    ensure_dagster_home(get_settings())
    with DagsterInstance.get():
        yield sqlite_db


def test_compensate_refuses_a_run_that_has_not_ended_with_its_state(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = undoable_run(url)
    assert main(["runs", "compensate", str(run_id), "--as", "ops"]) == 1
    assert "is running; only a failed or aborted run" in capsys.readouterr().err


def test_runs_show_lists_the_compensation_in_the_order_it_runs(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = undoable_run(url)
    RunStore(url).fail_run(run_id, {"message": "d failed"})
    assert main(["runs", "show", str(run_id)]) == 0
    out = capsys.readouterr().out
    section = out.split("compensation: pending\n", 1)[1].splitlines()[:3]
    assert [line.split()[:3] for line in section] == [
        ["1.", "b", "pending"],
        ["2.", "a", "pending"],
        ["3.", "c", "pending"],
    ]
    assert main(["runs", "show", str(run_id), "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["compensation"]["status"] == "pending"
    assert [s["step_id"] for s in body["compensation"]["steps"]] == ["b", "a", "c"]
    # A second request while it is pending is refused, naming it.
    assert main(["runs", "compensate", str(run_id)]) == 1
    assert "its compensation is pending already" in capsys.readouterr().err
