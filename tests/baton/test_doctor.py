"""``baton doctor``: what waits on the system is listed with its reason (SQLite and Postgres)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from baton.approvals import Approvals
from baton.cli.main import main
from baton.db.models import utcnow
from baton.doctor import GRACE, waiting_on_system
from baton.settings import get_settings
from tests.baton.lifecycle_world import PLAN, World


def _later() -> object:
    return utcnow() + GRACE * 2


def test_each_kind_of_wait_is_listed_with_its_reason(world: World) -> None:
    store = world.store
    _, unclaimed = world.waiting()
    Approvals(store).decide(unclaimed, user="ann", decision="continue")  # nobody resumes it
    _, failed = world.waiting()
    world.recorder.fail_with = "no job 'review' in code location 'baton'"
    world.lifecycle().decide(failed, user="ann", decision="continue")
    world.lifecycle().resume(failed)
    pending = store.create_run(organization="global", slug="review", version=1, inputs={})

    with store.session() as s:
        # A failed launch is known at once; the rest only once it lasts past the grace period.
        assert [w.id for w in waiting_on_system(s)] == [str(failed)]
        found = {w.id: w for w in waiting_on_system(s, now=_later())}  # type: ignore[arg-type]
    assert found[str(unclaimed)].kind == "approval_unclaimed"
    assert "is the Dagster daemon running" in found[str(unclaimed)].reason
    assert found[str(failed)].kind == "approval_not_launched"
    assert "no job 'review'" in found[str(failed)].reason
    assert found[str(pending)].kind == "run_not_started"


def test_a_launched_segment_is_not_listed(world: World) -> None:
    _, approval_id = world.waiting()
    world.lifecycle().decide(approval_id, user="ann", decision="continue")
    world.lifecycle().resume(approval_id)
    run_id = Approvals(world.store).get(approval_id).run_id
    segment = world.store.get_run(run_id).segment_id
    world.store.begin_segment(run_id=run_id, dagster_run_id="dag-2", steps=[], segment=segment)
    with world.store.session() as s:
        kinds = [w.kind for w in waiting_on_system(s, now=_later())]  # type: ignore[arg-type]
    assert "approval_not_launched" not in kinds


def test_the_cli_prints_nothing_waits_or_the_list(
    sqlite_db: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BATON_DATABASE_URL", sqlite_db)
    get_settings.cache_clear()
    assert main(["doctor"]) == 0
    assert "nothing waits on the system" in capsys.readouterr().out
    assert main(["doctor", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"waiting": []}


def test_a_running_step_past_its_lease_is_listed_until_reaped(world: World) -> None:
    store = world.store
    run_id = store.create_run(organization="global", slug="review", version=1, inputs={})
    store.begin_segment(run_id=run_id, dagster_run_id="dag-9", steps=PLAN)
    store.start_step(run_id, "draft", input={}, dagster_run_id="dag-9")
    lease = timedelta(seconds=get_settings().sensors.step_lease_seconds)
    with store.session() as s:
        assert waiting_on_system(s, now=_later()) == []  # type: ignore[arg-type]
        found = waiting_on_system(s, now=utcnow() + lease + GRACE * 2)
    (orphan,) = found
    assert (orphan.kind, orphan.id, orphan.run_id) == (
        "step_orphaned",
        f"{run_id}/draft",
        str(run_id),
    )
    assert "dag-9" in orphan.reason and "baton_reaper_sensor" in orphan.reason
