"""What routes get from the application: the store, Dagster, settings, rate limits."""

from __future__ import annotations

from fastapi import Request

from baton.api.dagster import DagsterGateway
from baton.api.ratelimit import RateLimiter
from baton.settings import Settings
from baton.store.service import RunStore


def get_store(request: Request) -> RunStore:
    store: RunStore = request.app.state.store
    return store


def get_dagster(request: Request) -> DagsterGateway:
    gateway: DagsterGateway = request.app.state.dagster
    return gateway


def get_settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def limiter(request: Request, name: str) -> RateLimiter:
    limiters: dict[str, RateLimiter] = request.app.state.limiters
    return limiters[name]
