"""`baton cache list|invalidate`: the step cache from a plain shell."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from baton.cli.main import main
from baton.db.engine import session_scope
from baton.db.models import utcnow
from baton.settings import get_settings
from baton.store.cache import CacheKey, CacheRepository


@pytest.fixture
def url(sqlite_db: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("BATON_DATABASE_URL", sqlite_db)
    get_settings.cache_clear()
    now = utcnow()
    with session_scope(sqlite_db) as s:
        repo = CacheRepository(s)
        for org, agent, orchestration, step_id, age in (
            ("acme", "echo", "hello", "greet", 0),
            ("acme", "publisher", "hello", "publish", 0),
            ("globex", "echo", "other", "greet", 0),
            ("globex", "echo", "other", "old", 7200),  # written with a ttl of 1h, 2h ago
        ):
            repo.put(
                CacheKey(org, agent, "v1", f"{org}{agent}{step_id}".ljust(64, "0")),
                ttl=timedelta(hours=1),
                now=now - timedelta(seconds=age),
                orchestration=orchestration,
                step_id=step_id,
                run_id=None,
                output={"secret-free": True},
            )
    return sqlite_db


def _listed(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, str]]:
    assert main(["cache", "list", "--json", *args]) == 0
    return list(json.loads(capsys.readouterr().out))


def test_list_shows_entries_without_outputs_and_filters(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    entries = _listed(capsys)
    assert len(entries) == 4 and all("output" not in e for e in entries)
    assert [e["step_id"] for e in _listed(capsys, "--step", "hello:publish")] == ["publish"]
    assert {e["organization"] for e in _listed(capsys, "--org", "globex")} == {"globex"}
    assert main(["cache", "list"]) == 0
    out = capsys.readouterr().out
    assert "hello:greet" in out and "AGENT" in out


def test_invalidate_prints_how_many_it_removed(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cache", "invalidate", "--expired"]) == 0
    assert capsys.readouterr().out.strip() == "removed 1 cache entry"
    assert main(["cache", "invalidate", "--agent", "echo", "--orchestration", "hello"]) == 0
    assert capsys.readouterr().out.strip() == "removed 1 cache entry"
    assert main(["cache", "invalidate", "--all"]) == 0
    assert capsys.readouterr().out.strip() == "removed 2 cache entries"
    assert _listed(capsys) == []


def test_invalidate_needs_a_filter_and_a_well_formed_step(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cache", "invalidate"]) == 2
    assert "--all" in capsys.readouterr().err
    assert main(["cache", "invalidate", "--step", "hello"]) == 2
    assert "ORCHESTRATION:STEP" in capsys.readouterr().err
    assert len(_listed(capsys)) == 4
