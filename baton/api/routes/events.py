"""The event log: Server-Sent Events when asked for ``text/event-stream``, else JSON pages."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from baton.api import views
from baton.api.auth import Principal, require
from baton.api.deps import get_settings_of, get_store
from baton.api.errors import error_responses, not_found
from baton.api.pagination import MAX_LIMIT, CursorParam, encode_cursor
from baton.api.queries import event_cursor, events_after, scoped_run, sequences_after
from baton.api.schemas import Event, EventPage
from baton.api.sse import MEDIA_TYPE, last_event_id, stream, wants_stream
from baton.lineage import tree_run_ids
from baton.store.service import RunStore

router = APIRouter(tags=["events"])
SSE_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A page of events, or with `Accept: text/event-stream` a live stream",
        "content": {MEDIA_TYPE: {"schema": {"type": "string"}}},
    }
}
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _events(
    request: Request,
    principal: Principal,
    store: RunStore,
    run_id: uuid.UUID | None,
    limit: int,
    cursor: str | None,
    tree: bool = False,
) -> EventPage | StreamingResponse:
    def fetch(after: int, upto: int | None, size: int) -> Sequence[Event]:
        org = principal.organization
        with store.session() as s:
            if tree and run_id is not None:  # read each time: children appear as the run goes
                ids = tree_run_ids(s, run_id)
                rows = events_after(s, org, after=after, limit=size, upto=upto, run_ids=ids)
            else:
                rows = events_after(s, org, after=after, limit=size, run_id=run_id, upto=upto)
            return [views.event(r) for r in rows]

    def visible(after: int, size: int) -> Sequence[int]:
        with store.session() as s:
            return sequences_after(s, after=after, limit=size)

    if wants_stream(request):
        settings = get_settings_of(request)
        after = last_event_id(request) or event_cursor(cursor)
        body = stream(
            request,
            fetch,
            visible,
            after=after,
            poll_seconds=settings.api.events_poll_seconds,
            heartbeat_seconds=settings.api.heartbeat_seconds,
            settle_seconds=settings.api.events_settle_seconds,
        )
        return StreamingResponse(body, media_type=MEDIA_TYPE, headers=HEADERS)
    items = list(fetch(event_cursor(cursor), None, limit + 1))
    more = len(items) > limit
    items = items[:limit]
    next_cursor = encode_cursor(items[-1].id) if more and items else None
    return EventPage(items=items, next_cursor=next_cursor)


@router.get(
    "/api/v1/events",
    response_model=EventPage,
    responses={**SSE_DOC, **error_responses(401, 403, 422)},
)
def all_events(
    request: Request,
    principal: Principal = Depends(require("viewer")),  # noqa: B008
    store: RunStore = Depends(get_store),  # noqa: B008
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    cursor: CursorParam = None,
) -> EventPage | StreamingResponse:
    """Events of the caller's organization in order (SSE resumes with Last-Event-ID)."""
    return _events(request, principal, store, None, limit, cursor)


@router.get(
    "/api/v1/runs/{run_id}/events",
    response_model=EventPage,
    responses={**SSE_DOC, **error_responses(401, 403, 404, 422)},
    tags=["runs"],
)
def run_events(
    run_id: uuid.UUID,
    request: Request,
    principal: Principal = Depends(require("viewer")),  # noqa: B008
    store: RunStore = Depends(get_store),  # noqa: B008
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    cursor: CursorParam = None,
) -> EventPage | StreamingResponse:
    """One run's events in order (SSE resumes with Last-Event-ID)."""
    with store.session() as s:
        if scoped_run(s, principal.organization, run_id) is None:
            raise not_found(f"orchestration run {run_id}")
    return _events(request, principal, store, run_id, limit, cursor)


@router.get(
    "/api/v1/runs/{run_id}/tree/events",
    response_model=EventPage,
    responses={**SSE_DOC, **error_responses(401, 403, 404, 422)},
    tags=["runs"],
)
def tree_events(
    run_id: uuid.UUID,
    request: Request,
    principal: Principal = Depends(require("viewer")),  # noqa: B008
    store: RunStore = Depends(get_store),  # noqa: B008
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    cursor: CursorParam = None,
) -> EventPage | StreamingResponse:
    """The events of the run and of every run below it (child runs at any depth, including
    those created while the stream is open), in order, each with its ``run_id`` (SSE resumes
    with Last-Event-ID)."""
    with store.session() as s:
        if scoped_run(s, principal.organization, run_id) is None:
            raise not_found(f"orchestration run {run_id}")
    return _events(request, principal, store, run_id, limit, cursor, tree=True)
