"""``/healthz`` (the process answers) and ``/readyz`` (database and Dagster reachable, or 503
within about two seconds: see ``baton.api.readiness``)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from baton.api.dagster import DagsterGateway
from baton.api.deps import get_dagster, get_store
from baton.api.errors import error_response, error_responses
from baton.api.readiness import ping_database, probe_for
from baton.api.schemas import Health
from baton.store.service import RunStore

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="The process is up")
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    summary="The database and the Dagster instance answer",
    responses=error_responses(503),
)
def readyz(
    store: RunStore = Depends(get_store),  # noqa: B008
    dagster: DagsterGateway = Depends(get_dagster),  # noqa: B008
) -> Health | JSONResponse:
    # Both at once: each answers within the deadline, so the route does too.
    probes = {
        "database": probe_for(store, "database", lambda s: ping_database(s.url)),
        "dagster": probe_for(dagster, "dagster", lambda d: d.ping()),
    }
    with ThreadPoolExecutor(max_workers=len(probes)) as pool:
        states = {name: pool.submit(probe) for name, probe in probes.items()}
    checks = {name: state.result() for name, state in states.items()}
    if all(v == "ok" for v in checks.values()):
        return Health(status="ok", checks=checks)
    failed = "; ".join(f"{name}: {state}" for name, state in checks.items() if state != "ok")
    return error_response(503, "unavailable", f"not ready: {failed}")
