"""GET /api/v1/library/problems: the files the code location left out, with their errors."""

from __future__ import annotations

from pathlib import Path

from baton.library import sync_library
from tests.baton.api.world import World


def test_problems_list_each_invalid_file_with_its_errors(world: World) -> None:
    folder = Path(world.settings.library_dir)
    (folder / "typo.yaml").write_text("slug: typo\nname: Typo\nversion: 1\nsteps: []\nbogus: 1\n")
    sync_library(world.settings)
    response = world.client.get("/api/v1/library/problems", headers=world.headers("acme", "viewer"))
    assert response.status_code == 200
    [item] = response.json()["items"]
    assert item["path"] == str(folder / "typo.yaml")
    assert any(e["field"] == "bogus" or "bogus" in e["message"] for e in item["errors"])
    assert all(e["line"] for e in item["errors"])
    assert item["synced_at"]


def test_problems_are_empty_for_a_valid_library_and_need_a_token(world: World) -> None:
    sync_library(world.settings)
    response = world.client.get("/api/v1/library/problems", headers=world.headers("acme", "viewer"))
    assert response.json() == {"items": []}
    assert world.client.get("/api/v1/library/problems").status_code == 401
