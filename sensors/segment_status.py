"""The safety net for honest status in Dagster: segments follow their orchestration run.

The ops tag their own segment (the checkpoint op ``awaiting_approval``, the finish op
``completed``) and whoever aborts or fails a run settles its last segment
(``baton.dagster_status``). What happens outside any segment, or in a process that died before
it got there (an abort decided while the run waits, a checkpoint timing out with fail/abort, a
failure recorded by a sensor), is caught here: this sensor reads Baton's events after its
cursor, and for every run they name applies the run's *current* status to its segments in
Dagster. Reading the current status, not the event, makes ticks idempotent and order-proof.
It never requests a run.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dagster import (
    DagsterInstance,
    DefaultSensorStatus,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from baton.dagster_status import settle_run, tag_run_segments
from baton.settings import EVERY_DAEMON_LOOP
from baton.store.events import EventsRepository
from baton.store.runs import RunsRepository
from baton.store.service import RunStore
from orchestration_defs.compiler.resources import BatonStoreResource

# Events after which a run's status in Dagster may have to change.
STATUS_EVENTS = frozenset(
    {
        "run.segment_started",
        "run.completed",
        "run.failed",
        "run.aborted",
        "checkpoint.requested",
        "checkpoint.expired",
    }
)
BATCH = 500
# A sequence number is taken at insert but visible at commit, so a later event can be seen
# before an earlier one (Postgres). A gap younger than this may still fill: stop before it.
SETTLE = timedelta(seconds=10)
# A failed run's segment still running ends Failure by itself; look again for this long.
RECHECK = timedelta(minutes=10)


@dataclass(frozen=True)
class _Event:
    sequence: int
    type: str
    run_id: uuid.UUID | None
    created_at: datetime


@dataclass(frozen=True)
class _Run:
    id: uuid.UUID
    status: str
    last_dagster_run_id: str | None
    reason: str | None


@sensor(
    name="baton_segment_status_sensor",
    minimum_interval_seconds=EVERY_DAEMON_LOOP,
    default_status=DefaultSensorStatus.RUNNING,
    description="Keeps each segment's baton/status tag current and shows an aborted or failed "
    "run's last segment as Canceled or Failure. Requests no runs.",
)
def baton_segment_status_sensor(
    context: SensorEvaluationContext, baton_store: BatonStoreResource
) -> SensorResult:
    after = int(context.cursor or 0)
    store = baton_store.store()
    events = _visible(_events_after(store, after), after, _now())
    if not events:
        return SensorResult(cursor=str(after), skip_reason=SkipReason(_idle(after)))
    notes, held = _apply(context, store, events)
    cursor = min(held) - 1 if held else events[-1].sequence
    summary = f"events {events[0].sequence}..{events[-1].sequence}: " + "; ".join(notes)
    return SensorResult(cursor=str(cursor), skip_reason=SkipReason(summary))


def _apply(
    context: SensorEvaluationContext, store: RunStore, events: Sequence[_Event]
) -> tuple[list[str], list[int]]:
    """Settle every run the events name, once each; the notes and the sequences to redo."""
    latest: dict[uuid.UUID, _Event] = {}
    for event in events:
        if event.type in STATUS_EVENTS and event.run_id is not None:
            latest[event.run_id] = event
    if not latest:
        return [f"{len(events)} new event(s), none changes a run's status in Dagster"], []
    runs = _runs(store, list(latest))
    notes: list[str] = []
    held: list[int] = []
    for run_id, event in latest.items():
        note, redo = _settle(context.instance, runs.get(run_id), run_id)
        context.log.info(f"orchestration run {run_id} ({event.type}): {note}")
        notes.append(f"run {run_id}: {note}")
        if redo and _now() - event.created_at < RECHECK:
            held.append(event.sequence)
    return notes, held


def _settle(instance: DagsterInstance, run: _Run | None, run_id: uuid.UUID) -> tuple[str, bool]:
    """Apply one run's status; a note for the tick's reason and whether to look again."""
    if run is None:
        return "skipped: the run is deleted or unknown", False
    if not run.last_dagster_run_id:
        return f"skipped: {run.status}, but no segment is recorded yet", False
    if run.status not in ("aborted", "failed"):
        segments = tag_run_segments(instance, run.id, run.status)
        if not segments:
            return f"skipped: no segment of it in this Dagster instance ({run.status})", False
        return f"{len(segments)} segment(s) tagged {run.status}", False
    outcome = settle_run(
        instance,
        run.id,
        run.status,
        last_dagster_run_id=run.last_dagster_run_id,
        reason=run.reason,
    )
    segment = run.last_dagster_run_id
    return f"{run.status}; last segment {segment}: {_OUTCOMES[outcome]}", outcome == "in_progress"


_OUTCOMES = {
    "missing": "skipped, not in this Dagster instance",
    "tagged": "tagged",
    "already": "already shows it",
    "reported": "had ended Success, now recorded as its true end",
    "canceling": "cancel requested",
    "in_progress": "still running, it ends Failure by itself (looked at again next tick)",
    "cancel_failed": "the run launcher could not cancel it (run monitoring ends it)",
}


def _events_after(store: RunStore, after: int) -> list[_Event]:
    with store.session() as s:
        rows = EventsRepository(s).list(after=after, limit=BATCH)
        return [_Event(r.sequence, r.type, r.run_id, _aware(r.created_at)) for r in rows]


def _runs(store: RunStore, run_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, _Run]:
    found: dict[uuid.UUID, _Run] = {}
    with store.session() as s:
        repo = RunsRepository(s)
        for run_id in run_ids:
            row = repo.get(run_id)
            if row is not None:
                reason = (row.error or {}).get("message")
                found[run_id] = _Run(row.id, row.status, row.last_dagster_run_id, reason)
    return found


def _visible(events: Sequence[_Event], after: int, now: datetime) -> list[_Event]:
    """The events up to the first gap that may still fill (see SETTLE)."""
    kept: list[_Event] = []
    previous = after
    for event in events:
        if event.sequence != previous + 1 and now - event.created_at < SETTLE:
            break
        kept.append(event)
        previous = event.sequence
    return kept


def _idle(after: int) -> str:
    return f"no new Baton event after sequence {after} (or a gap still committing)"


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; they were written in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _now() -> datetime:
    return datetime.now(UTC)
