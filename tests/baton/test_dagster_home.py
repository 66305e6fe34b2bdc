"""DAGSTER_HOME on first start: the shipped dagster.yaml, Dagster's storage created once under
a lock, and several processes opening a fresh home at once all succeed."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from baton import dagster_home
from baton.dagster_home import DEFAULT_INSTANCE_YAML, ensure_dagster_home
from baton.settings import get_settings

# Opens the instance the way every Baton entry point does, then reads from each storage.
OPEN_HOME = """
from dagster import DagsterInstance
from baton.dagster_home import ensure_dagster_home
from baton.settings import get_settings
ensure_dagster_home(get_settings())
with DagsterInstance.get() as instance:
    instance.get_runs_count()
    instance.all_instigator_state()
"""


def _tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        return {name for (name,) in rows}


def test_a_fresh_home_gets_the_shipped_yaml_and_dagsters_storage() -> None:
    home = ensure_dagster_home(get_settings())
    assert os.environ["DAGSTER_HOME"] == str(home)
    assert (home / "dagster.yaml").read_text() == DEFAULT_INSTANCE_YAML.read_text()
    assert "runs" in _tables(home / "history" / "runs.db")
    assert "event_logs" in _tables(home / "history" / "runs" / "index.db")
    assert not list(home.glob(".dagster.yaml.*.tmp"))


def test_an_existing_yaml_is_kept() -> None:
    home = get_settings().dagster_home
    home.mkdir(parents=True)
    mine = "telemetry:\n  enabled: false\n"
    (home / "dagster.yaml").write_text(mine)
    ensure_dagster_home(get_settings())
    assert (home / "dagster.yaml").read_text() == mine


def test_the_storage_is_opened_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[int] = []
    monkeypatch.setattr(dagster_home, "_create_storage", lambda: opened.append(1))
    ensure_dagster_home(get_settings())
    ensure_dagster_home(get_settings())
    assert opened == [1]


@pytest.mark.slow
def test_processes_opening_a_fresh_home_at_once_all_succeed() -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_HOME],
            env=dict(os.environ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(4)
    ]
    # wait(timeout=...) guards against a hang; it is not a speed check.
    results = [(p.wait(timeout=300), p.stdout.read() if p.stdout else "") for p in procs]
    assert [code for code, _ in results] == [0, 0, 0, 0], results
