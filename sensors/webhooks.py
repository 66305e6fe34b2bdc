"""The webhook sensor: webhooks stored in the inbox start runs of the orchestrations whose
``triggers`` name their source.

Exactly-once: every request carries ``run_key = webhook-<source>-<webhook id>-<slug>`` and
the orchestration run's id is derived from the same three values, so a tick evaluated again
(the cursor is written with the tick's requests) asks for the same run, which the daemon
dedupes. The inbox is selected by cursor, not by status, for that reason: a row marked
processed by a tick that crashed before its requests were stored is seen again.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from sqlalchemy import func, select

from baton import segments
from baton.db.models import OrchestrationDefinition
from baton.settings import get_settings
from baton.store.service import RunStore, UnknownRun
from baton.webhooks.inbox import Inbox, InboxItem
from orchestration_defs.compiler.resources import BatonStoreResource
from orchestration_defs.language.inputs import InputError, resolve_inputs
from orchestration_defs.language.models import OrchestrationSpec
from orchestration_defs.language.templates import TemplateError
from orchestration_defs.language.triggers import WebhookTriggerSpec, webhook_context

SOURCE_TAG = "baton/webhook_source"
WEBHOOK_TAG = "baton/webhook_id"
BATCH = 100
# Orchestration run ids of webhook runs are uuid5(NAMESPACE, "<source>/<webhook id>/<slug>").
NAMESPACE = uuid.UUID("6f1c3e55-0a8e-4a57-9d0b-2f63b7c1a9e4")


@dataclass(frozen=True)
class Outcome:
    """What one webhook produced: run requests, and why each other trigger did not fire."""

    requests: list[RunRequest]
    notes: list[str]


def run_key(source: str, webhook_id: str, slug: str) -> str:
    return f"webhook-{source}-{webhook_id}-{slug}"


def webhook_run_id(source: str, webhook_id: str, slug: str) -> uuid.UUID:
    """The orchestration run a webhook starts for one orchestration, the same on every tick."""
    return uuid.uuid5(NAMESPACE, f"{source}/{webhook_id}/{slug}")


def triggered_specs(store: RunStore, job_names: Sequence[str]) -> list[OrchestrationSpec]:
    """The newest stored version of each orchestration of the code location that has triggers."""
    d = OrchestrationDefinition
    newest = (
        select(d.organization, d.slug, func.max(d.version).label("version"))
        .group_by(d.organization, d.slug)
        .subquery()
    )
    query = select(d).join(
        newest,
        (d.organization == newest.c.organization)
        & (d.slug == newest.c.slug)
        & (d.version == newest.c.version),
    )
    specs = []
    with store.session() as s:
        for row in s.scalars(query):
            if row.spec.get("triggers") and segments.job_name(row.slug) in job_names:
                specs.append(OrchestrationSpec.model_validate(row.spec))
    return specs


def _request(
    store: RunStore, item: InboxItem, spec: OrchestrationSpec, inputs: dict[str, Any]
) -> RunRequest:
    """Create the orchestration run (once) and the request for its first segment.

    Its segment id is derived from the run id, so a tick evaluated again asks for the same
    segment, which the run already names as its active one.
    """
    run_id = webhook_run_id(item.source, item.webhook_id, spec.slug)
    try:
        store.get_run(run_id)
    except UnknownRun:
        store.create_run(
            organization=spec.organization,
            slug=spec.slug,
            version=spec.version,
            inputs=inputs,
            created_by=f"webhook:{item.source}",
            run_id=run_id,
            segment=run_id.hex,
        )
    segment = segments.plan(
        run_id,
        job=spec.job_name,
        inputs=store.mask(inputs),
        tags={
            SOURCE_TAG: item.source,
            WEBHOOK_TAG: item.webhook_id,
            segments.LAUNCHED_BY_TAG: "webhook",
        },
        run_key=run_key(item.source, item.webhook_id, spec.slug),
        segment_id=run_id.hex,
    )
    return segments.run_request(segment)


def _fire(trigger: WebhookTriggerSpec, spec: OrchestrationSpec, item: InboxItem) -> Any:
    """The resolved inputs when the trigger fires, else a string saying why not."""
    context = webhook_context(
        item.body,
        webhook_id=item.webhook_id,
        source=item.source,
        received_at=item.received_at.isoformat(),
    )
    try:
        if not trigger.matches(context):
            return f"{spec.slug}: filter is false"
        return resolve_inputs(spec.inputs, trigger.render_inputs(context))
    except (TemplateError, InputError) as exc:
        return f"{spec.slug}: {exc}"


def evaluate(store: RunStore, item: InboxItem, specs: Sequence[OrchestrationSpec]) -> Outcome:
    """The runs one stored webhook starts."""
    requests: list[RunRequest] = []
    notes: list[str] = []
    for spec in specs:
        if spec.organization != item.organization:
            continue  # a source only starts runs of its own organization
        for trigger in spec.triggers:
            if trigger.webhook.source != item.source:
                continue
            fired = _fire(trigger.webhook, spec, item)
            if isinstance(fired, str):
                notes.append(fired)
                continue
            requests.append(_request(store, item, spec, fired))
            break  # one run per orchestration and webhook, whichever trigger fired first
    return Outcome(requests, notes)


def build_webhook_sensor(job_names: Sequence[str], jobs: Sequence[object] = ()) -> SensorDefinition:
    """The sensor for the code location's jobs ``job_names``.

    It targets no job itself: ``sensors.definitions.targeting`` lets it launch the jobs by
    name, so building it builds no job. ``jobs`` is ignored (older callers pass them).
    """

    @sensor(
        name="baton_webhook_sensor",
        minimum_interval_seconds=get_settings().webhooks.sensor_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description="Starts runs of orchestrations whose triggers match stored webhooks.",
    )
    def baton_webhook_sensor(
        context: SensorEvaluationContext, baton_store: BatonStoreResource
    ) -> SensorResult | SkipReason:
        store = baton_store.store()
        inbox = Inbox(store.url)
        items = inbox.pending(after=int(context.cursor or 0), limit=BATCH, any_status=True)
        if not items:
            return SkipReason("no new webhooks in the inbox")
        specs = triggered_specs(store, job_names)
        requests: list[RunRequest] = []
        for item in items:
            outcome = evaluate(store, item, specs)
            requests.extend(outcome.requests)
            keys = [r.run_key for r in outcome.requests]
            status = "processed" if keys else "ignored"
            inbox.mark(item.id, status, {"run_keys": keys, "notes": outcome.notes})
            if not keys:
                context.log.info(f"webhook {item.source}/{item.webhook_id}: no run started")
        cursor = str(items[-1].id)
        if not requests:
            return SensorResult(
                skip_reason=SkipReason(
                    f"{len(items)} webhook(s) matched no trigger (see result in webhook_inbox)"
                ),
                cursor=cursor,
            )
        return SensorResult(run_requests=requests, cursor=cursor)

    return baton_webhook_sensor
