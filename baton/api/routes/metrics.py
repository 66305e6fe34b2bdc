"""``GET /metrics``: Prometheus text format, no authentication (scrapers carry no token)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from baton.api.metrics import registry_for

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus metrics"}},
)
def metrics(request: Request) -> Response:
    """Runs, steps, approvals and webhooks, in the Prometheus text exposition format."""
    return Response(generate_latest(registry_for(request.app)), media_type=CONTENT_TYPE_LATEST)
