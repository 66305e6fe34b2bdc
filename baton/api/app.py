"""The FastAPI application: routers are included here and nowhere else."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from baton.api.dagster import DagsterGateway
from baton.api.errors import install_error_handlers
from baton.api.openapi import install_openapi
from baton.api.ratelimit import RateLimiter
from baton.api.request_limits import RequestLimits
from baton.api.routes import approvals as approval_routes
from baton.api.routes import cache as cache_routes
from baton.api.routes import events as event_routes
from baton.api.routes import health as health_routes
from baton.api.routes import library as library_routes
from baton.api.routes import lineage as lineage_routes
from baton.api.routes import metrics as metrics_routes
from baton.api.routes import orchestrations as orchestration_routes
from baton.api.routes import runs as run_routes
from baton.api.routes import webhooks as webhook_routes
from baton.api.ui import router as ui_routes
from baton.settings import Settings, get_settings
from baton.store.service import RunStore

log = logging.getLogger(__name__)


def _register_library(settings: Settings) -> None:
    # Imported here: the library pulls in the agent catalog, which tests may not need.
    from baton.library import load_and_register, prepare_database

    prepare_database(settings)
    try:
        load_and_register(settings)
    except Exception as exc:  # serve anyway: runs, approvals and events do not need it
        log.error("the library could not be registered; launching may fail: %s", exc)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # The same start as the code location's: migrate, store every definition version.
    await run_in_threadpool(_register_library, app.state.settings)
    if app.state.settings.api.prewarm:
        # The first decision should resume as fast as the next: start the code server and the
        # run launcher's zygote now, in the background, instead of on the first launch.
        threading.Thread(target=app.state.dagster.warm, name="baton-prewarm", daemon=True).start()
    try:
        yield
    finally:
        app.state.dagster.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API for ``settings`` (default: the process settings).

    Args:
        settings: Baton's settings; tests pass their own.
    """
    settings = settings or get_settings()
    app = FastAPI(
        title="Baton API",
        version="1",
        description="Approvals, webhooks, live progress and status of Baton orchestration runs.",
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.store = RunStore(settings.db_url)
    app.state.dagster = DagsterGateway(settings)
    app.state.limiters = {
        "launch": RateLimiter("launch", settings.api.launch_per_minute),
        "decide": RateLimiter("decide", settings.api.decide_per_minute),
    }
    install_error_handlers(app)
    install_openapi(app)
    # Before any route: sizes and text of the request (docs/api.md "Limits").
    app.add_middleware(RequestLimits, settings=settings)
    # Routers (each module owns one resource):
    app.include_router(health_routes.router)
    app.include_router(orchestration_routes.router)
    app.include_router(library_routes.router)
    app.include_router(cache_routes.router)
    app.include_router(run_routes.router)
    app.include_router(lineage_routes.router)
    app.include_router(approval_routes.router)
    app.include_router(event_routes.router)
    app.include_router(metrics_routes.router)
    app.include_router(webhook_routes.router)
    app.include_router(ui_routes.router)
    return app
