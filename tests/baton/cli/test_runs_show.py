"""`baton runs show ID` in its text form lists the run's events, one compact line each."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator

import pytest
from dagster import DagsterInstance

from baton.approvals import Approvals
from baton.cli.main import main
from baton.dagster_home import ensure_dagster_home
from baton.settings import get_settings
from baton.store.service import RunStore
from tests.checkpoint_helpers import pending, start, users
from tests.helpers import ScriptedAgent, compile_text, execute

FLOW = """
slug: show-flow
name: Show flow
version: 1
steps:
  - id: draft
    agent: echo
    with: {title: "Notes"}
  - id: review
    checkpoint:
      prompt: "Publish {{ steps.draft.output.title }}?"
      show: "{{ steps.draft.output }}"
      approvers: [editors]
"""

FAILING = """
slug: failing-flow
name: Failing flow
version: 1
steps:
  - id: draft
    agent: echo
    with: {title: "Notes"}
"""
LINE = re.compile(r"^ +(\d+)  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  (\S+) *(.*)$")


@pytest.fixture
def instance(sqlite_db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[DagsterInstance]:
    """The CLI's own settings: Baton's tables at ``sqlite_db``, the isolated DAGSTER_HOME."""
    monkeypatch.setenv("BATON_DATABASE_URL", sqlite_db)
    get_settings.cache_clear()
    ensure_dagster_home(get_settings())
    with DagsterInstance.get() as instance:
        yield instance


def _events(out: str) -> list[tuple[int, str, str]]:
    """(sequence, type, summary) of each line of the ``events:`` section."""
    section = out.split("\nevents:\n", 1)[1].split("\nDagster runs", 1)[0]
    lines = [LINE.match(line) for line in section.splitlines()]
    assert all(lines), section
    return [(int(m[1]), m[2], m[3]) for m in lines if m]


def test_the_text_form_lists_every_event_with_what_it_is_about(
    instance: DagsterInstance, capsys: pytest.CaptureFixture[str]
) -> None:
    url = get_settings().db_url
    users(url, ("ann", ["editors"]))
    _, job = compile_text(FLOW, url)
    run_id = start(job, instance, url)
    approval = pending(url, run_id)
    Approvals(RunStore(url)).decide(approval.id, user="ann", decision="abort")

    assert main(["runs", "show", str(run_id)]) == 0
    events = _events(capsys.readouterr().out)
    stored = RunStore(url).run_detail(run_id).events
    assert [(seq, type_) for seq, type_, _ in events] == [(e.sequence, e.type) for e in stored]
    summaries = {type_: summary for _, type_, summary in events}
    assert "step draft, attempt 1" in summaries["step.completed"]
    assert summaries["checkpoint.requested"] == f"step review, approval {approval.id}"
    assert f"approval {approval.id}, decision abort, by ann" in summaries["checkpoint.decided"]
    assert "dagster run " in summaries["run.segment_started"]


def test_a_failure_shows_its_message_on_one_line_masked(
    instance: DagsterInstance, capsys: pytest.CaptureFixture[str]
) -> None:
    url = get_settings().db_url
    _, job = compile_text(FAILING, url)
    key = "sk-" + uuid.uuid4().hex
    leak = f" key={key}\nsecond line" + " padding" * 30
    agent = ScriptedAgent(key=uuid.uuid4().hex, fail={"draft": 9}, retryable=False, leak=leak)
    assert not execute(job, instance, url, agent=agent).success
    [run] = RunStore(url).list_runs(orchestration="failing-flow")

    assert main(["runs", "show", str(run.id)]) == 0
    out = capsys.readouterr().out
    assert key not in out
    failed = [summary for _, type_, summary in _events(out) if type_ == "step.failed"]
    assert failed, out
    assert failed[0].startswith("step draft, attempt 1, will retry False, message: scripted")
    assert failed[0].endswith("...")
    assert "***" in failed[0]


def test_json_keeps_the_events_too(
    instance: DagsterInstance, capsys: pytest.CaptureFixture[str]
) -> None:
    url = get_settings().db_url
    _, job = compile_text(FAILING, url)
    assert execute(job, instance, url).success
    [run] = RunStore(url).list_runs(orchestration="failing-flow")
    assert main(["runs", "show", str(run.id), "--json"]) == 0
    assert '"type": "run.completed"' in capsys.readouterr().out


def test_refused_actions_exit_non_zero_naming_the_state_and_show_in_the_audit(
    instance: DagsterInstance, capsys: pytest.CaptureFixture[str]
) -> None:
    url = get_settings().db_url
    _, job = compile_text(FAILING, url)
    assert execute(job, instance, url).success
    [run] = RunStore(url).list_runs(orchestration="failing-flow")
    rid = str(run.id)

    retry = ["runs", "retry", rid, "draft", "--as", "ann", "--reason", "try again"]
    assert main([*retry, "--input", '{"title": "New"}']) == 1
    err = capsys.readouterr().err
    assert "step 'draft' is completed (the run is completed)" in err
    assert main(["runs", "abort", rid, "--as", "ann", "--reason", "stop it"]) == 1
    assert "is completed" in capsys.readouterr().err
    # Arguments that cannot be read exit 2 and ask nothing (so nothing is audited).
    assert main(["runs", "skip", rid, "draft", "--output", "{not json"]) == 2
    assert "output: not valid JSON" in capsys.readouterr().err
    assert main(["runs", "retry", rid, "draft", "--input", "@/nonexistent/input.json"]) == 2
    capsys.readouterr()

    assert main(["runs", "show", rid]) == 0
    out = capsys.readouterr().out
    section = out.split("operator actions (audit log), oldest first:\n", 1)[1]
    lines = section.split("\nevents:\n", 1)[0].splitlines()
    assert len(lines) == 2, lines
    assert "retry draft" in lines[0] and "by ann via cli" in lines[0]
    assert "(run completed, step completed)  refused" in lines[0]
    # A refusal is decided before the value is read: the value is not kept with it.
    assert "with " not in lines[0] and "reason: try again" in lines[0]
    assert "abort" in lines[1] and "reason: stop it" in lines[1] and "+0000" in lines[1]

    assert main(["runs", "show", rid, "--json"]) == 0
    audit = json.loads(capsys.readouterr().out)["audit"]
    assert [(a["action"], a["outcome"], a["by"], a["via"]) for a in audit] == [
        ("retry", "refused", "ann", "cli"),
        ("abort", "refused", "ann", "cli"),
    ]
    assert audit[0]["at"].endswith("+00:00")
