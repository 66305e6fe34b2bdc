"""Outbound deliveries: events become signed POSTs to subscribers, retried with backoff.

``enqueue`` turns new ``orchestration_events`` into delivery rows (one per subscription and
event, unique, each subscription with its own cursor advanced in the same transaction);
``send_due`` posts the deliveries whose time has come. Both run in the delivery sensor, never
in a run worker, so a slow or failing endpoint cannot slow a run. A delivery keeps its
``webhook-id`` (``evt_<sequence>``) across attempts so receivers can deduplicate; each attempt
is signed afresh with a current timestamp.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select

from baton.db.engine import session_scope
from baton.db.models import OrchestrationEvent, WebhookDelivery, WebhookSubscription, utcnow
from baton.settings import Settings
from baton.webhooks import crypto
from baton.webhooks.events import matches, public_name
from baton.webhooks.signing import headers

log = logging.getLogger(__name__)
EVENT_BATCH = 500
# A tick stops starting new requests after this long, so one tick never runs for minutes.
TICK_BUDGET_SECONDS = 30.0
ERROR_CHARS = 500
# Recorded as the attempt's error when the subscription's secret cannot be decrypted (the key
# changed without BATON_SECRET_KEY_PREVIOUS, or a backup restored under another key): nothing
# is posted, and the attempt counts toward the retries like any other failure, so it ends
# failed rather than waiting silently, and the fix has time to land before it does.
UNDECRYPTABLE = (
    "secret cannot be decrypted with the configured keys "
    "(see docs/production.md#rotating-baton_secret_key)"
)


@dataclass(frozen=True)
class Attempt:
    """The outcome of one delivery attempt."""

    delivery_id: int
    status: str
    status_code: int | None
    error: str | None


@dataclass(frozen=True)
class _Undecryptable:
    """A delivery whose subscription's secret no configured key decrypts."""

    subscription_id: str
    reason: str


def envelope(event: OrchestrationEvent) -> dict[str, Any]:
    """The JSON body subscribers receive for an event."""
    return {
        "type": public_name(event.type),
        "timestamp": event.created_at.isoformat(),
        "data": {
            "sequence": event.sequence,
            "organization": event.organization,
            "run_id": str(event.run_id) if event.run_id else None,
            **event.payload,
        },
    }


def backoff(settings: Settings, attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed attempt: base, 2x base, 4x base, ..."""
    base = settings.webhooks.delivery_backoff_seconds
    return timedelta(seconds=base * (2 ** max(attempts - 1, 0)))


class Dispatcher:
    """Queue and send deliveries for the database at ``url``."""

    def __init__(self, url: str, settings: Settings, *, client: httpx.Client | None = None) -> None:
        self.url = url
        self.settings = settings
        self._client = client

    def enqueue(self) -> int:
        """Record a delivery for every new event a subscription asked for; returns how many."""
        with session_scope(self.url) as s:
            ids = s.scalars(
                select(WebhookSubscription.id).where(WebhookSubscription.disabled_at.is_(None))
            ).all()
        return sum(self._enqueue_one(subscription_id) for subscription_id in ids)

    def _enqueue_one(self, subscription_id: Any) -> int:
        with session_scope(self.url) as s:
            sub = s.get(WebhookSubscription, subscription_id, with_for_update=True)
            if sub is None or sub.disabled_at is not None:
                return 0
            events = s.scalars(
                select(OrchestrationEvent)
                .where(
                    OrchestrationEvent.sequence > sub.last_sequence,
                    OrchestrationEvent.organization == sub.organization,
                )
                .order_by(OrchestrationEvent.sequence)
                .limit(EVENT_BATCH)
            ).all()
            added = 0
            for event in events:
                if matches(sub.event_types, public_name(event.type)):
                    s.add(_delivery(sub, event))
                    added += 1
            if events:
                sub.last_sequence = events[-1].sequence
            return added

    def due(self, limit: int = 50) -> Sequence[int]:
        """Pending deliveries whose next attempt is due, oldest first."""
        with session_scope(self.url) as s:
            return s.scalars(
                select(WebhookDelivery.id)
                .where(
                    WebhookDelivery.status == "pending",
                    WebhookDelivery.next_attempt_at <= utcnow(),
                )
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                .limit(limit)
            ).all()

    def send_due(self, limit: int = 50) -> list[Attempt]:
        """Attempt every due delivery (within the tick's time budget)."""
        started = time.monotonic()
        attempts = []
        for delivery_id in self.due(limit):
            if time.monotonic() - started > TICK_BUDGET_SECONDS:
                break  # the rest stay due for the next tick
            attempt = self.attempt(delivery_id)
            if attempt is not None:
                attempts.append(attempt)
        return attempts

    def attempt(self, delivery_id: int) -> Attempt | None:
        """Send one delivery once and record the outcome; None if it is no longer pending."""
        prepared = self._prepare(delivery_id)
        if prepared is None:
            return None
        if isinstance(prepared, _Undecryptable):
            log.warning(
                "webhook delivery %s: subscription %s: %s; put the key it was encrypted under "
                "in BATON_SECRET_KEY_PREVIOUS on every process, then run `baton secrets "
                "rotate-key`",
                delivery_id,
                prepared.subscription_id,
                prepared.reason,
            )
            return self._record(delivery_id, None, UNDECRYPTABLE)
        target, secret, webhook_id, body = prepared
        status_code, error = self._post(target, secret, webhook_id, body)
        return self._record(delivery_id, status_code, error)

    def _prepare(self, delivery_id: int) -> tuple[str, str, str, bytes] | _Undecryptable | None:
        with session_scope(self.url) as s:
            row = s.get(WebhookDelivery, delivery_id)
            if row is None or row.status != "pending":
                return None
            sub = s.get(WebhookSubscription, row.subscription_id)
            assert sub is not None  # deliveries are deleted with their subscription
            try:
                secret = crypto.decrypt(self.settings, sub.secret_encrypted)
            except crypto.SecretKeyError as exc:
                # Its message names the variables, never a key or the secret.
                return _Undecryptable(str(sub.id), str(exc))
            body = json.dumps(row.payload, separators=(",", ":")).encode()
            return sub.url, secret, row.webhook_id, body

    def _post(
        self, target: str, secret: str, webhook_id: str, body: bytes
    ) -> tuple[int | None, str | None]:
        request_headers = {
            "content-type": "application/json",
            "user-agent": "baton-webhooks/1",
            **headers(secret, webhook_id, body),
        }
        try:
            response = self._http().post(target, content=body, headers=request_headers)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]
        if 200 <= response.status_code < 300:
            return response.status_code, None
        return response.status_code, f"HTTP {response.status_code}: {response.text}"[:ERROR_CHARS]

    def _record(self, delivery_id: int, status_code: int | None, error: str | None) -> Attempt:
        with session_scope(self.url) as s:
            row = s.get(WebhookDelivery, delivery_id)
            assert row is not None
            row.attempts += 1
            row.last_status_code = status_code
            row.last_error = error
            if error is None:
                row.status, row.delivered_at = "delivered", utcnow()
            elif row.attempts >= self.settings.webhooks.delivery_max_attempts:
                row.status = "failed"
            else:
                row.next_attempt_at = utcnow() + backoff(self.settings, row.attempts)
            if error is not None:
                log.info("webhook delivery %s attempt %s: %s", row.id, row.attempts, error)
            return Attempt(delivery_id, row.status, status_code, error)

    def _http(self) -> httpx.Client:
        if self._client is None:
            # No redirects: a subscriber's 3xx is an answer, not an invitation to post elsewhere.
            self._client = httpx.Client(
                timeout=self.settings.webhooks.delivery_timeout_seconds, follow_redirects=False
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def _delivery(sub: WebhookSubscription, event: OrchestrationEvent) -> WebhookDelivery:
    return WebhookDelivery(
        subscription_id=sub.id,
        event_sequence=event.sequence,
        event_type=public_name(event.type),
        webhook_id=f"evt_{event.sequence}",
        payload=envelope(event),
        status="pending",
        attempts=0,
        next_attempt_at=utcnow(),
    )


def deliveries(url: str, subscription_id: Any | None = None) -> list[WebhookDelivery]:
    """Delivery rows, oldest first (for the CLI and tests)."""
    query = select(WebhookDelivery).order_by(WebhookDelivery.id)
    if subscription_id is not None:
        query = query.where(WebhookDelivery.subscription_id == subscription_id)
    with session_scope(url) as s:
        return list(s.scalars(query))
