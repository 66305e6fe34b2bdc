"""Deliverables reach the table, the asset store and Dagster's asset catalog; secrets reach
none of the places a person or a database could read."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance, EventRecordsFilter
from sqlalchemy import MetaData, select

from baton.db.engine import get_engine
from baton.settings import get_settings
from baton.store.service import RunStore
from tests.helpers import CALLS, PNG_BYTES, ScriptedAgent, compile_text, execute, write_library

PICTURE = """
slug: picture
name: Picture
version: 1
inputs:
  prompt: {type: string, default: a lighthouse}
steps:
  - id: draw
    agent: echo
    retry: {max_attempts: 2}
    with: {prompt: "{{ inputs.prompt }}"}
"""


def _url(instance: DagsterInstance) -> str:
    return instance.baton_db_url  # type: ignore[attr-defined]


def test_a_deliverable_is_stored_and_shows_in_the_asset_catalog_with_its_run(
    dagster_instance: DagsterInstance,
) -> None:
    url = _url(dagster_instance)
    _, job = compile_text(PICTURE, url)
    agent = ScriptedAgent(key=uuid.uuid4().hex, deliver=True)
    result = execute(job, dagster_instance, url, agent=agent)
    assert result.success
    run = RunStore(url).list_runs()[0]
    [record] = RunStore(url).deliverables(run.id)
    assert (record.step_id, record.name, record.type, record.version) == (
        "draw",
        "picture.png",
        "image",
        1,
    )
    assert record.asset_uri is not None and record.asset_uri.startswith("file://")
    stored = Path(record.asset_uri.removeprefix("file://"))
    assert stored.read_bytes() == PNG_BYTES
    assert stored.is_relative_to(get_settings().data_dir / "assets")
    key = AssetKey(["baton", "picture", "draw"])
    materialization = dagster_instance.get_latest_materialization_event(key)
    assert materialization is not None
    assert materialization.run_id == result.run_id
    metadata = materialization.asset_materialization.metadata  # type: ignore[union-attr]
    assert metadata["orchestration_run_id"].value == str(run.id)
    assert metadata["dagster_run"].value == result.run_id
    assert metadata["uri"].value == record.asset_uri


def test_retry_after_is_honoured_through_dagster(dagster_instance: DagsterInstance) -> None:
    url = _url(dagster_instance)
    _, job = compile_text(PICTURE, url)
    key = uuid.uuid4().hex
    agent = ScriptedAgent(key=key, fail={"draw": 1}, retry_after=0.5)
    result = execute(job, dagster_instance, url, agent=agent)
    assert result.success
    assert CALLS[key]["draw"] == 2
    retries = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY]
    assert len(retries) == 1
    messages = [e.message for e in dagster_instance.all_logs(result.run_id)]
    assert any("retrying after 0.5 s (Retry-After)" in m for m in messages)


SECRET_ENTRY = """
slug: vault-user
type: echo
description: An agent that declares a secret env var.
env:
  - name: BATON_TEST_SERVICE_TOKEN
    required: true
"""


def _dump_tables(url: str) -> str:
    engine = get_engine(url)
    meta = MetaData()
    meta.reflect(engine)
    chunks = []
    with engine.connect() as conn:
        for table in meta.sorted_tables:
            chunks.extend(repr(tuple(row)) for row in conn.execute(select(table)))
    return "\n".join(chunks)


def _dagster_text(instance: DagsterInstance, run_id: str, home: Path) -> str:
    logs = [repr(e) for e in instance.all_logs(run_id)]
    records = instance.get_event_records(
        EventRecordsFilter(event_type=DagsterEventType.STEP_FAILURE)
    )
    logs += [repr(r.event_log_entry) for r in records]
    files = [p.read_bytes().decode("latin-1") for p in home.rglob("*") if p.is_file()]
    return "\n".join(logs + files)


@pytest.mark.parametrize("where", ["output", "error"])
def test_a_secret_never_reaches_logs_events_errors_or_the_database(
    dagster_instance: DagsterInstance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    agents = write_library(tmp_path / "agents", {"vault-user.yaml": SECRET_ENTRY})
    monkeypatch.setenv("BATON_AGENTS_DIR", str(agents))
    secret = f"tok_{uuid.uuid4().hex}"
    pattern_key = "sk-" + uuid.uuid4().hex
    monkeypatch.setenv("BATON_TEST_SERVICE_TOKEN", secret)
    url = _url(dagster_instance)
    _, job = compile_text(PICTURE, url)
    leak = f" token={secret} key={pattern_key}"
    fail = {"draw": 5} if where == "error" else {}
    agent = ScriptedAgent(key=uuid.uuid4().hex, fail=fail, leak=leak, deliver=True)
    result = execute(job, dagster_instance, url, agent=agent)
    assert result.success is (where == "output")
    haystack = _dump_tables(url) + _dagster_text(
        dagster_instance, result.run_id, Path(dagster_instance.root_directory)
    )
    assert "***" in haystack  # the masked values are there, masked
    assert secret not in haystack
    assert pattern_key not in haystack
