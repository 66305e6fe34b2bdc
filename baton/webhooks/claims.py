"""Who launches the first segment of a webhook's run: the accepting process or the sensor.

The guard is the orchestration run's row, whose id is deterministic (``webhook_run_id``):

- The fast path (the API process that accepted the webhook) *claims* a fired run by creating
  it with its own segment id, ``fast_segment(run_id)``. Creating a row with a fixed primary key
  is atomic: of the fast path and a sensor tick racing, exactly one insert wins.
- The sensor creates (or finds) the run with ``run_id.hex`` as its segment and requests that
  segment with a ``run_key``, so a tick evaluated again launches nothing new.
- A fast-path claim whose Dagster run has not started after the lease
  (``BATON_SENSORS__CLAIM_LEASE_SECONDS``; the API died or hangs) is taken over by the sensor
  with a compare-and-set of the run's active segment (fast -> ``run_id.hex``), with an event
  saying so. A failed launch hands the claim to the sensor at once the same way (its reason in
  an event). A fast-path Dagster run that still starts after either finds another segment
  active and does no work (``RunStore.begin_segment``).

No migration is needed: the run row and its active-segment column already hold the claim.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError

from baton.db.models import OrchestrationRun, utcnow
from baton.store.events import EventsRepository
from baton.store.runs import RunsRepository
from baton.store.service import RunStore
from baton.webhooks.inbox import InboxItem
from baton.webhooks.triggering import NAMESPACE, Fired

SENSOR = "sensor"
REQUEST, WAIT, DONE = "request", "wait", "done"
# ``started(segment_id)``: the Dagster run of that segment, if one exists and left NOT_STARTED.
Started = Callable[[str], str | None]


@dataclass(frozen=True)
class Decision:
    """What the sensor does with one fired run: request its segment, wait, or nothing."""

    action: str
    reason: str = ""


def sensor_segment(run_id: uuid.UUID) -> str:
    return run_id.hex


def fast_segment(run_id: uuid.UUID) -> str:
    """The segment id of the fast path's launch: deterministic too, and never the sensor's."""
    return uuid.uuid5(NAMESPACE, f"{run_id}/fast").hex


def _age_seconds(when: datetime) -> float:
    now = utcnow()
    if when.tzinfo is None:  # SQLite returns naive datetimes
        when = when.replace(tzinfo=now.tzinfo)
    return (now - when).total_seconds()


class WebhookClaims:
    """The claim on each webhook run, at one store."""

    def __init__(self, store: RunStore) -> None:
        self.store = store

    def _create(self, item: InboxItem, fired: Fired, segment: str) -> bool:
        """Create the run with ``segment`` active; False when it exists already."""
        try:
            self.store.create_run(
                organization=fired.spec.organization,
                slug=fired.spec.slug,
                version=fired.spec.version,
                inputs=fired.inputs,
                created_by=f"webhook:{item.source}",
                run_id=fired.run_id,
                segment=segment,
            )
        except IntegrityError:
            return False  # created by the other side (or an earlier tick) first
        return True

    def claim_fast(self, item: InboxItem, fired: Fired) -> bool:
        """The fast path's claim: True when this caller created the run and must launch it."""
        return self._create(item, fired, fast_segment(fired.run_id))

    def launched(self, item: InboxItem, fired: Fired, *, dagster_run_id: str, by: str) -> None:
        self._event(
            fired.run_id,
            "segment.launched",
            {"webhook_id": item.webhook_id, "dagster_run_id": dagster_run_id, "by": by},
        )

    def release(self, item: InboxItem, fired: Fired, *, reason: str, by: str) -> bool:
        """Hand a claim whose launch failed to the sensor now, saying why; False if the
        sensor had taken it over already."""
        run_id = fired.run_id
        with self.store.session() as s:
            if not RunsRepository(s).swap_segment(
                run_id, fast_segment(run_id), sensor_segment(run_id)
            ):
                return False
            run = RunsRepository(s).get(run_id)
            assert run is not None
            EventsRepository(s).append(
                organization=run.organization,
                type="segment.launch_failed",
                run_id=run_id,
                payload={
                    "webhook_id": item.webhook_id,
                    "reason": reason,
                    "by": by,
                    "next": "the webhook sensor launches it at its next tick",
                },
            )
        return True

    def decide(
        self, item: InboxItem, fired: Fired, *, lease_seconds: float, started: Started
    ) -> Decision:
        """The sensor's side: request the run's segment unless the fast path holds it."""
        slug = fired.spec.slug
        run = self._get(fired.run_id)
        if run is None and self._create(item, fired, sensor_segment(fired.run_id)):
            return Decision(REQUEST)
        run = run or self._get(fired.run_id)
        assert run is not None
        if run.segment_id == sensor_segment(fired.run_id):
            return Decision(REQUEST)  # the sensor's own (a tick again: the run_key dedupes)
        if run.segment_id != fast_segment(fired.run_id):
            return Decision(DONE, f"{slug}: the run continues in another segment")
        dagster_run_id = started(run.segment_id)
        if dagster_run_id is not None:
            return Decision(
                DONE, f"{slug}: started by the fast path (Dagster run {dagster_run_id})"
            )
        age = _age_seconds(run.created_at)
        if age < lease_seconds:
            return Decision(
                WAIT,
                f"{slug}: claimed by the fast path {age:.0f} s ago, not started yet; the sensor "
                f"takes it over {lease_seconds - age:.0f} s from now",
            )
        return self._take_over(item, fired, age, lease_seconds)

    def _take_over(
        self, item: InboxItem, fired: Fired, age: float, lease_seconds: float
    ) -> Decision:
        run_id = fired.run_id
        reason = (
            f"claimed by the fast path {age:.0f} s ago (lease {lease_seconds:g} s) and no "
            "Dagster run of it started: the process that accepted the webhook died or hangs"
        )
        with self.store.session() as s:
            if not RunsRepository(s).swap_segment(
                run_id, fast_segment(run_id), sensor_segment(run_id)
            ):
                return Decision(WAIT, f"{fired.spec.slug}: its claim changed; asked again")
            run = RunsRepository(s).get(run_id)
            assert run is not None
            EventsRepository(s).append(
                organization=run.organization,
                type="segment.launch_taken_over",
                run_id=run_id,
                payload={"webhook_id": item.webhook_id, "reason": reason, "by": SENSOR},
            )
        return Decision(REQUEST, f"{fired.spec.slug}: taken over: {reason}")

    def _get(self, run_id: uuid.UUID) -> OrchestrationRun | None:
        with self.store.session() as s:
            run = RunsRepository(s).get(run_id)
            if run is not None:
                s.expunge(run)
            return run

    def _event(self, run_id: uuid.UUID, type: str, payload: dict[str, str]) -> None:
        with self.store.session() as s:
            run = RunsRepository(s).get(run_id)
            if run is not None:
                EventsRepository(s).append(
                    organization=run.organization, type=type, run_id=run_id, payload=payload
                )
