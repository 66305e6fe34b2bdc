"""The FastAPI application: routers are included here and nowhere else."""

from __future__ import annotations

from fastapi import FastAPI

from baton.api.routes import metrics as metrics_routes
from baton.api.routes import webhooks as webhook_routes
from baton.settings import Settings, get_settings


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
    )
    app.state.settings = settings
    # Routers (each module owns one resource):
    app.include_router(metrics_routes.router)
    app.include_router(webhook_routes.router)
    return app
