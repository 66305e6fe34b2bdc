"""Outbound webhook subscriptions: an organization's endpoint, its secret and event types.

A subscription starts at the newest event when it is created: it receives what happens from
then on, not the history. Its secret is shown once and stored encrypted (``crypto.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import func, select, update

from baton.db.engine import session_scope
from baton.db.models import OrchestrationEvent, WebhookDelivery, WebhookSubscription, utcnow
from baton.settings import Settings
from baton.webhooks import crypto
from baton.webhooks.events import check_patterns
from baton.webhooks.signing import generate_secret


class SubscriptionError(ValueError):
    """A malformed subscription, or an unknown one."""


@dataclass(frozen=True)
class SubscriptionInfo:
    """A subscription without its secret."""

    id: uuid.UUID
    organization: str
    url: str
    event_types: list[str]
    created_at: datetime
    disabled_at: datetime | None


def check_url(url: str) -> str:
    """An http(s) URL with a host.

    Raises:
        SubscriptionError: anything else.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SubscriptionError(f"url: expected an http:// or https:// URL, got {url!r}")
    return url


class Subscriptions:
    """Create, end and list subscriptions at one database."""

    def __init__(self, url: str, settings: Settings) -> None:
        self.url = url
        self.settings = settings

    def subscribe(
        self, *, organization: str, url: str, events: Sequence[str]
    ) -> tuple[uuid.UUID, str]:
        """A new subscription; returns its id and secret (shown once).

        Raises:
            SubscriptionError: a bad URL, organization or event type.
        """
        if not organization.strip():
            raise SubscriptionError("organization: expected a non-empty name")
        try:
            patterns = check_patterns(events)
        except ValueError as exc:
            raise SubscriptionError(str(exc)) from exc
        secret = generate_secret()
        with session_scope(self.url) as s:
            newest = s.scalar(select(func.max(OrchestrationEvent.sequence))) or 0
            row = WebhookSubscription(
                organization=organization,
                url=check_url(url),
                secret_encrypted=crypto.encrypt(self.settings, secret),
                event_types=patterns,
                last_sequence=newest,
            )
            s.add(row)
            s.flush()
            return row.id, secret

    def unsubscribe(self, subscription_id: uuid.UUID) -> int:
        """End a subscription; its pending deliveries are recorded failed. Returns how many.

        Raises:
            SubscriptionError: no such active subscription.
        """
        with session_scope(self.url) as s:
            changed = s.execute(
                update(WebhookSubscription)
                .where(
                    WebhookSubscription.id == subscription_id,
                    WebhookSubscription.disabled_at.is_(None),
                )
                .values(disabled_at=utcnow())
            )
            if not changed.rowcount:  # type: ignore[attr-defined]
                raise SubscriptionError(f"no active subscription {subscription_id}")
            cancelled = s.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.subscription_id == subscription_id,
                    WebhookDelivery.status == "pending",
                )
                .values(status="failed", last_error="unsubscribed")
            )
            return int(cancelled.rowcount)  # type: ignore[attr-defined]

    def list(
        self, organization: str | None = None, *, include_disabled: bool = False
    ) -> Sequence[SubscriptionInfo]:
        """Subscriptions, oldest first."""
        query = select(WebhookSubscription).order_by(WebhookSubscription.created_at)
        if organization is not None:
            query = query.where(WebhookSubscription.organization == organization)
        if not include_disabled:
            query = query.where(WebhookSubscription.disabled_at.is_(None))
        with session_scope(self.url) as s:
            return [
                SubscriptionInfo(
                    r.id, r.organization, r.url, list(r.event_types), r.created_at, r.disabled_at
                )
                for r in s.scalars(query)
            ]
