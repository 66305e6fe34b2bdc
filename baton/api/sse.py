"""Server-Sent Events over Baton's event log.

Each event goes out as ``id: <sequence>``, ``event: <type>``, ``data: <json>``; a client that
reconnects with ``Last-Event-ID: <sequence>`` gets everything after it, so nothing is missed.
The stream polls the table (the log is the source of truth, shared by every process), sends a
comment as heartbeat when idle, and ends as soon as the client is gone.

Sequences are handed out when a row is inserted but become visible when its transaction
commits, so on Postgres event 11 can be visible while 10 is still on its way. A stream that
sent 11 and moved its position past 10 would never send 10. So a stream only goes as far as
its ``Horizon``: the end of the gap-free run of sequences it can see. A gap that stays longer
than ``settle_seconds`` is a rolled-back insert, and the stream moves past it.
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


class Horizon:
    """How far the event log is known to be complete, seen from one stream."""

    def __init__(self, settle_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.settle_seconds = settle_seconds
        self.clock = clock
        self._gaps: dict[int, float] = {}  # first missing sequence -> when it was first seen

    def advance(self, after: int, visible: Sequence[int]) -> int:
        """The highest sequence up to which nothing can still appear.

        Args:
            after: Where the stream stands.
            visible: Every sequence above ``after`` in the log now (any organization), in order.
        """
        now, horizon = self.clock(), after
        for sequence in visible:
            if sequence != horizon + 1:
                first_seen = self._gaps.setdefault(horizon + 1, now)
                if now - first_seen < self.settle_seconds:
                    break  # still committing, perhaps: wait for it
            horizon = sequence
        self._gaps = {start: seen for start, seen in self._gaps.items() if start > horizon}
        return horizon


def format_event(event: Event) -> str:
    data = json.dumps(event.model_dump(mode="json"), separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.type}\ndata: {data}\n\n"


async def stream(
    request: Request,
    fetch: Callable[[int, int, int], Sequence[Event]],
    visible: Callable[[int, int], Sequence[int]],
    *,
    after: int,
    poll_seconds: float,
    heartbeat_seconds: float,
    settle_seconds: float,
) -> AsyncIterator[str]:
    """Events after ``after`` as SSE text, forever, until the client disconnects.

    Args:
        fetch: ``(after, upto, limit) -> events`` of the stream's scope in id order.
        visible: ``(after, limit) -> sequences`` of the whole log (see ``Horizon``).
        Both run in a worker thread.
    """
    horizon = Horizon(settle_seconds)
    state = request.app.state
    # Counted so tests (and operators) can see that streams end when clients leave.
    state.open_streams = getattr(state, "open_streams", 0) + 1
    try:
        yield f"retry: {int(poll_seconds * 1000) + 1000}\n\n"
        idle_since = time.monotonic()
        while not await request.is_disconnected():
            seen = await run_in_threadpool(visible, after, BATCH)
            upto = horizon.advance(after, seen)
            events = await run_in_threadpool(fetch, after, upto, BATCH)
            for event in events:
                yield format_event(event)
            # Past the horizon only when every event of the scope up to it was sent.
            full = len(events) == BATCH
            after = events[-1].id if full else upto
            if events:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since >= heartbeat_seconds:
                yield ": heartbeat\n\n"
                idle_since = time.monotonic()
            if full or (len(seen) == BATCH and upto == seen[-1]):
                continue  # more are waiting: no pause
            await asyncio.sleep(poll_seconds)
    finally:
        state.open_streams -= 1
