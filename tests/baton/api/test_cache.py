"""DELETE /api/v1/cache: an operator invalidates the step cache of their organization."""

from __future__ import annotations

from datetime import timedelta

from baton.db.engine import session_scope
from baton.db.models import utcnow
from baton.store.cache import CacheFilter, CacheKey, CacheRepository
from tests.baton.api.world import World


def _entry(world: World, org: str, agent: str, step_id: str = "greet") -> None:
    with session_scope(world.settings.db_url) as s:
        CacheRepository(s).put(
            CacheKey(org, agent, "v1", f"{org}-{agent}-{step_id}".ljust(64, "0")),
            ttl=timedelta(hours=1),
            now=utcnow(),
            orchestration=f"{org}-greet",
            step_id=step_id,
            run_id=None,
            output={"ok": True},
        )


def _left(world: World) -> list[tuple[str, str, str]]:
    entries = world.store.cache.entries(CacheFilter())
    return sorted((e.organization, e.agent, e.step_id) for e in entries)


def test_an_operator_invalidates_their_organizations_entries_only(world: World) -> None:
    for org in ("acme", "globex"):
        _entry(world, org, "echo")
        _entry(world, org, "publisher")
        _entry(world, org, "echo", step_id="other")
    operator = world.headers("acme", "operator")

    response = world.client.delete("/api/v1/cache?agent=publisher", headers=operator)
    assert response.status_code == 200 and response.json() == {"removed": 1}
    response = world.client.delete(
        "/api/v1/cache?orchestration=acme-greet&step=other", headers=operator
    )
    assert response.json() == {"removed": 1}
    response = world.client.delete("/api/v1/cache?all=true", headers=operator)
    assert response.json() == {"removed": 1}
    assert _left(world) == [
        ("globex", "echo", "greet"),
        ("globex", "echo", "other"),
        ("globex", "publisher", "greet"),
    ]


def test_a_filter_is_required_and_a_viewer_is_refused(world: World) -> None:
    _entry(world, "acme", "echo")
    operator = world.headers("acme", "operator")
    response = world.client.delete("/api/v1/cache", headers=operator)
    assert response.status_code == 422 and "all=true" in response.json()["error"]["message"]
    response = world.client.delete("/api/v1/cache?step=greet", headers=operator)
    assert response.status_code == 422 and "orchestration" in response.json()["error"]["message"]
    viewer = world.headers("acme", "viewer")
    assert world.client.delete("/api/v1/cache?all=true", headers=viewer).status_code == 403
    assert world.client.delete("/api/v1/cache?all=true").status_code == 401
    assert len(_left(world)) == 1
