"""Server-Sent Events over Baton's event log.

Each event goes out as ``id: <sequence>``, ``event: <type>``, ``data: <json>``; a client that
reconnects with ``Last-Event-ID: <sequence>`` gets everything after it, so nothing is missed.
The stream polls the table (the log is the source of truth, shared by every process), sends a
comment as heartbeat when idle, and ends as soon as the client is gone.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from baton.api.errors import ApiError
from baton.api.schemas import Event

MEDIA_TYPE = "text/event-stream"
BATCH = 200


def wants_stream(request: Request) -> bool:
    return MEDIA_TYPE in request.headers.get("accept", "")


def last_event_id(request: Request) -> int:
    """The ``Last-Event-ID`` header as a sequence (0 when absent).

    Raises:
        ApiError: 422 when the header is not a non-negative integer.
    """
    raw = request.headers.get("last-event-id", "").strip()
    if not raw:
        return 0
    if not raw.isdigit():
        raise ApiError(
            422, "invalid", "Last-Event-ID must be an event id (an integer)", field="Last-Event-ID"
        )
    return int(raw)


def format_event(event: Event) -> str:
    data = json.dumps(event.model_dump(mode="json"), separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.type}\ndata: {data}\n\n"


async def stream(
    request: Request,
    fetch: Callable[[int, int], Sequence[Event]],
    *,
    after: int,
    poll_seconds: float,
    heartbeat_seconds: float,
) -> AsyncIterator[str]:
    """Events after ``after`` as SSE text, forever, until the client disconnects.

    Args:
        fetch: ``(after, limit) -> events`` in id order (runs in a worker thread).
    """
    state = request.app.state
    # Counted so tests (and operators) can see that streams end when clients leave.
    state.open_streams = getattr(state, "open_streams", 0) + 1
    try:
        yield f"retry: {int(poll_seconds * 1000) + 1000}\n\n"
        idle_since = time.monotonic()
        while not await request.is_disconnected():
            events = await run_in_threadpool(fetch, after, BATCH)
            for event in events:
                yield format_event(event)
                after = event.id
            if events:
                idle_since = time.monotonic()
                if len(events) == BATCH:
                    continue  # more are waiting: no pause
            elif time.monotonic() - idle_since >= heartbeat_seconds:
                yield ": heartbeat\n\n"
                idle_since = time.monotonic()
            await asyncio.sleep(poll_seconds)
    finally:
        state.open_streams -= 1
