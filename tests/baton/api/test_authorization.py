"""The authorization matrix: every route x every role x own/other organization x no token.

Expected answers follow one rule: no token -> 401 (except the public probes); a role that
does not grant the route -> 403; another organization's run, approval or orchestration ->
404 (422 for launching, where the orchestration is a body field); else the route's success
status. Lists answer 200 for everyone with a role, showing only their organization's things.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from baton.api.auth import allows
from tests.baton.api.world import ORGS, ROLES, World

TARGET_ORG = "acme"
VALID_YAML = "slug: x\nname: X\nversion: 1\nsteps:\n  - id: a\n    agent: echo\n    with: {t: 1}\n"


@dataclass(frozen=True)
class Route:
    """One route as the matrix calls it; ``target`` builds what it acts on (a path)."""

    method: str
    target: Callable[[World], str]
    role: str | None  # None: public
    success: int
    scoped: bool  # acts on one thing of the target organization
    listing: bool = False
    json: dict[str, Any] | None = None
    content: str | None = None
    other_org_status: int = 404


def _run(w: World) -> str:
    return w.waiting_run(TARGET_ORG)[0]


def _approval(w: World) -> str:
    return w.waiting_run(TARGET_ORG)[1]


ROUTES = {
    "list orchestrations": Route(
        "GET", lambda w: "/api/v1/orchestrations", "viewer", 200, False, listing=True
    ),
    "get orchestration": Route(
        "GET", lambda w: f"/api/v1/orchestrations/{TARGET_ORG}-greet", "viewer", 200, True
    ),
    "validate": Route(
        "POST",
        lambda w: "/api/v1/orchestrations/validate",
        "viewer",
        200,
        False,
        content=VALID_YAML,
    ),
    "launch": Route(
        "POST",
        lambda w: "/api/v1/runs",
        "operator",
        202,
        True,
        json={"orchestration": f"{TARGET_ORG}-greet", "inputs": {"name": "Ada"}},
        other_org_status=422,
    ),
    "list runs": Route("GET", lambda w: "/api/v1/runs", "viewer", 200, False, listing=True),
    "get run": Route("GET", lambda w: f"/api/v1/runs/{_run(w)}", "viewer", 200, True),
    "abort": Route("POST", lambda w: f"/api/v1/runs/{_run(w)}/abort", "operator", 200, True),
    "retry step": Route(
        "POST",
        lambda w: f"/api/v1/runs/{w.failed_run(TARGET_ORG)}/steps/greet/retry",
        "operator",
        202,
        True,
    ),
    "skip step": Route(
        "POST",
        lambda w: f"/api/v1/runs/{w.failed_run(TARGET_ORG)}/steps/greet/skip",
        "operator",
        202,
        True,
    ),
    # The world's orchestration has no compensable step: a caller the route admits reaches
    # the state check (409 naming it); tests/baton/api/test_compensate.py covers the 202.
    "compensate": Route(
        "POST",
        lambda w: f"/api/v1/runs/{w.failed_run(TARGET_ORG)}/compensate",
        "operator",
        409,
        True,
    ),
    "list approvals": Route(
        "GET", lambda w: "/api/v1/approvals", "viewer", 200, False, listing=True
    ),
    "get approval": Route(
        "GET", lambda w: f"/api/v1/approvals/{_approval(w)}", "viewer", 200, True
    ),
    "decide": Route(
        "POST",
        lambda w: f"/api/v1/approvals/{_approval(w)}/decision",
        "approver",
        200,
        True,
        json={"decision": "continue", "comment": "fine"},
    ),
    "run events": Route("GET", lambda w: f"/api/v1/runs/{_run(w)}/events", "viewer", 200, True),
    "run tree": Route("GET", lambda w: f"/api/v1/runs/{_run(w)}/tree", "viewer", 200, True),
    "run audit": Route("GET", lambda w: f"/api/v1/runs/{_run(w)}/audit", "viewer", 200, True),
    "tree events": Route(
        "GET", lambda w: f"/api/v1/runs/{_run(w)}/tree/events", "viewer", 200, True
    ),
    "events": Route("GET", lambda w: "/api/v1/events", "viewer", 200, False, listing=True),
    # The deployment's library (its files are not an organization's): any signed-in reader.
    "library problems": Route("GET", lambda w: "/api/v1/library/problems", "viewer", 200, False),
    # Without a filter an admitted caller reaches the check (422 naming it); the 200s are in
    # tests/baton/api/test_cache.py.
    "invalidate cache": Route("DELETE", lambda w: "/api/v1/cache", "operator", 422, False),
    "healthz": Route("GET", lambda w: "/healthz", None, 200, False),
    "readyz": Route("GET", lambda w: "/readyz", None, 200, False),
}
CALLERS = [(org, role) for org in ORGS for role in ROLES] + [(None, None)]


def expected(route: Route, org: str | None, role: str | None) -> int:
    if route.role is None:
        return route.success
    if role is None:
        return 401
    if not allows(role, route.role):
        return 403
    if org != TARGET_ORG and route.scoped:
        return route.other_org_status
    return route.success


@pytest.mark.parametrize(
    ("org", "role"), CALLERS, ids=[f"{o}-{r}" if o else "no-token" for o, r in CALLERS]
)
@pytest.mark.parametrize("name", list(ROUTES))
def test_matrix(shared_world: World, name: str, org: str | None, role: str | None) -> None:
    w = shared_world
    route = ROUTES[name]
    for each in ORGS:  # something of each organization in every listing
        w.waiting_run(each)
    path = route.target(w)
    headers = w.headers(org, role) if org and role else {}
    if route.content is not None:
        headers["Content-Type"] = "application/yaml"
    response = w.client.request(
        route.method, path, headers=headers, json=route.json, content=route.content
    )
    want = expected(route, org, role)
    assert response.status_code == want, response.text
    if want >= 400:
        assert set(response.json()) == {"error"}
        assert response.json()["error"]["code"]
    if route.listing and org and want == 200:
        # Only the caller's organization: none of the other one's ids, some of its own.
        foreign = next(o for o in ORGS if o != org)
        assert not any(ident in response.text for ident in w.ids[foreign])
        if name != "list orchestrations":
            assert any(ident in response.text for ident in w.ids[org])
        else:
            assert f"{org}-greet" in response.text and f"{foreign}-greet" not in response.text


def test_every_route_of_the_api_is_in_the_matrix(shared_world: World) -> None:
    """A new route must be added to the matrix (parts B and C test theirs separately)."""
    others = ("/webhooks", "/metrics", "/ui")
    paths = {
        (method.upper(), path)
        for path, operations in shared_world.app.openapi()["paths"].items()
        for method in operations
        if not path.startswith(others) and "webhook" not in path
    }
    covered = {
        (r.method, r.target(shared_world).replace(TARGET_ORG + "-greet", "{slug}"))
        for r in ROUTES.values()
    }
    normalized = set()
    for method, path in covered:
        parts = ["{id}" if len(p) == 36 and p.count("-") == 4 else p for p in path.split("/")]
        normalized.add((method, "/".join(parts)))
    templated = {
        (
            m,
            p.replace("{run_id}", "{id}")
            .replace("{approval_id}", "{id}")
            .replace("{step_id}", "greet"),
        )
        for m, p in paths
    }
    assert templated == normalized
