"""``baton doctor`` on child runs (SQLite and Postgres): parents not resumed, launches claimed
but not started (with why), children waiting for a slot, each progressing or stuck."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from baton.cli.main import main
from baton.db.models import utcnow
from baton.doctor import waiting_on_system
from baton.settings import get_settings
from baton.store.service import RunStore, StepPlan
from tests.baton.test_children_races import CHILD, CHILDREN, PARENT, Counting, _parent
from tests.helpers import compile_text

LATER = timedelta(minutes=5)  # past the grace period and the default claim lease


def _kinds(store: RunStore) -> dict[str, list]:
    with store.session() as s:
        found = waiting_on_system(s, now=utcnow() + LATER)
    by_kind: dict[str, list] = {}
    for w in found:
        by_kind.setdefault(w.kind, []).append(w)
    return by_kind


def _start_and_end(store: RunStore, recorder: Counting) -> None:
    """The claimed children run and complete, and no one tells their parent."""
    for plan in recorder.launches:
        store.begin_segment(
            run_id=plan.run_id,
            dagster_run_id=f"d-{plan.segment_id}",
            steps=[StepPlan("work", "agent", "echo")],
            segment=plan.segment_id,
        )
        store.complete_run(plan.run_id, {"start": "done"})


def test_child_waits_each_with_why(db_url: str) -> None:
    compile_text(CHILD, db_url)
    compile_text(PARENT, db_url)
    store = RunStore(db_url)
    recorder = Counting(url=db_url)
    parent = _parent(store, recorder, 2, "continue")

    found = _kinds(store)
    claimed = {w.id for w in found["launch_not_started"]}
    assert claimed == {str(p.run_id) for p in recorder.launches} and len(claimed) == 2
    assert all(
        w.stuck and "no segment has started" in w.reason for w in found["launch_not_started"]
    )
    slots = found["child_waiting_slot"]
    assert len(slots) == CHILDREN - 2 and {w.run_id for w in slots} == {str(parent)}
    assert all(not w.stuck and "progressing" in w.reason and "2 of" in w.reason for w in slots)
    assert "run_not_started" not in found  # pending children are not 'runs no one started'

    _start_and_end(store, recorder)  # both end; their ends are never reported
    found = _kinds(store)
    assert "launch_not_started" not in found
    assert all(w.stuck and "no sibling runs" in w.reason for w in found["child_waiting_slot"])


def test_a_parent_whose_children_all_ended_is_not_resumed(db_url: str) -> None:
    compile_text(CHILD, db_url)
    compile_text(PARENT, db_url)
    store = RunStore(db_url)
    recorder = Counting(url=db_url)
    parent = _parent(store, recorder, CHILDREN, "continue")
    _start_and_end(store, recorder)
    [w] = _kinds(store)["children_not_resumed"]
    assert (w.id, w.stuck) == (str(parent), True)
    assert f"all {CHILDREN} children of step 'periods' ended (completed)" in w.reason


def test_a_failed_launch_is_listed_at_once_with_its_reason(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    compile_text(CHILD, db_url)
    compile_text(PARENT, db_url)
    store = RunStore(db_url)
    recorder = Counting(url=db_url, fail_with="no job 'leaf' in code location 'baton'")
    _parent(store, recorder, 2, "continue")
    with store.session() as s:
        now = [w for w in waiting_on_system(s) if w.kind == "launch_not_started"]
    assert len(now) == 2 and all("no job 'leaf'" in w.reason for w in now)

    monkeypatch.setenv("BATON_DATABASE_URL", db_url)
    get_settings.cache_clear()
    capsys.readouterr()
    assert main(["doctor", "--json"]) == 1
    listed = json.loads(capsys.readouterr().out)["waiting"]
    assert {w["kind"] for w in listed if w["stuck"]} == {"launch_not_started"}
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "launch_not_started" in out and "(stuck)" in out and "no job 'leaf'" in out
