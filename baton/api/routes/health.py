"""``/healthz`` (the process answers) and ``/readyz`` (database and Dagster reachable)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy import text

from baton.api.dagster import DagsterGateway
from baton.api.deps import get_dagster, get_store
from baton.api.errors import error_response, error_responses
from baton.api.schemas import Health
from baton.store.service import RunStore

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)


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
    checks = {"database": _check(lambda: _ping_db(store)), "dagster": _check(dagster.ping)}
    if all(v == "ok" for v in checks.values()):
        return Health(status="ok", checks=checks)
    failed = "; ".join(f"{name}: {state}" for name, state in checks.items() if state != "ok")
    return error_response(503, "unavailable", f"not ready: {failed}")


def _ping_db(store: RunStore) -> None:
    with store.session() as s:
        s.execute(text("SELECT 1"))


def _check(probe: object) -> str:
    try:
        probe()  # type: ignore[operator]
    except Exception as exc:
        # The exception text may carry a URL with a password: log it, answer only its type.
        log.warning("readiness check failed: %s", exc)
        return f"unreachable ({type(exc).__name__})"
    return "ok"
