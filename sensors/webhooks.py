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
from dataclasses import dataclass, field, replace
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
from baton.edge import input_limits
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
# Seconds one trigger may spend rendering its filter and inputs (BATON_LIMITS__TEMPLATE_SECONDS
# if smaller).
TRIGGER_SECONDS = 2.0
# Orchestration run ids of webhook runs are uuid5(NAMESPACE, "<source>/<webhook id>/<slug>").
NAMESPACE = uuid.UUID("6f1c3e55-0a8e-4a57-9d0b-2f63b7c1a9e4")


@dataclass(frozen=True)
class Outcome:
    """What one webhook produced: run requests, and why each other trigger did not fire."""

    requests: list[RunRequest]
    notes: list[str]
    waiting: list[str] = field(default_factory=list)


def run_key(source: str, webhook_id: str, slug: str) -> str:
    return f"webhook-{source}-{webhook_id}-{slug}"


def webhook_run_id(source: str, webhook_id: str, slug: str) -> uuid.UUID:
    """The orchestration run a webhook starts for one orchestration, the same on every tick."""
    return uuid.uuid5(NAMESPACE, f"{source}/{webhook_id}/{slug}")


def triggered_specs(
    store: RunStore, job_names: Sequence[str] | None = None
) -> list[OrchestrationSpec]:
    """The newest stored version of each orchestration that has triggers.

    All of them, whether or not the code location has their job: a webhook for a job that is
    missing waits in the inbox (saying so) instead of being dropped. ``job_names`` is unused.
    """
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
            if row.spec.get("triggers"):
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
    settings = get_settings()
    # Triggers render inside the sensor's tick, one webhook after another: a slow one gets
    # little time, so it cannot hold up the others (or the tick's own timeout).
    templates = replace(
        settings.limits.templates(),
        max_seconds=min(settings.limits.template_seconds, TRIGGER_SECONDS),
    )
    try:
        if not trigger.matches(context, templates):
            return f"{spec.slug}: filter is false"
        inputs = trigger.render_inputs(context, templates)
        return resolve_inputs(spec.inputs, inputs, input_limits(settings))
    except (TemplateError, InputError) as exc:
        return f"{spec.slug}: {exc}"


def evaluate(
    store: RunStore,
    item: InboxItem,
    specs: Sequence[OrchestrationSpec],
    job_names: Sequence[str] | None = None,
) -> Outcome:
    """The runs one stored webhook starts, and the triggers that fired for a job the code
    location does not have (``job_names``), which wait."""
    requests: list[RunRequest] = []
    notes: list[str] = []
    waiting: list[str] = []
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
            if job_names is not None and spec.job_name not in job_names:
                waiting.append(f"{spec.slug}: job '{spec.job_name}' is not in the code location")
            else:
                requests.append(_request(store, item, spec, fired))
            break  # one run per orchestration and webhook, whichever trigger fired first
    return Outcome(requests, notes, waiting)


def _record(
    context: SensorEvaluationContext, inbox: Inbox, item: InboxItem, outcome: Outcome
) -> None:
    """What became of one webhook, on its inbox row: processed, ignored, or still waiting."""
    keys = [r.run_key for r in outcome.requests]
    result: dict[str, Any] = {"run_keys": keys, "notes": outcome.notes}
    if outcome.waiting:
        result["waiting"] = outcome.waiting
        status = "pending"
        context.log.warning(
            f"webhook {item.source}/{item.webhook_id} waits: {'; '.join(outcome.waiting)}"
        )
    else:
        status = "processed" if keys else "ignored"
        if not keys:
            context.log.info(f"webhook {item.source}/{item.webhook_id}: no run started")
    inbox.mark(item.id, status, result)


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
        after = int(context.cursor or 0)
        new = inbox.pending(after=after, limit=BATCH, any_status=True)
        held = inbox.held(upto=after, limit=BATCH)  # waiting for a job: asked again each tick
        if not new and not held:
            return SkipReason("no new webhooks in the inbox")
        specs = triggered_specs(store)
        requests: list[RunRequest] = []
        waiting = 0
        for item in [*held, *new]:
            outcome = evaluate(store, item, specs, job_names)
            requests.extend(outcome.requests)
            _record(context, inbox, item, outcome)
            waiting += bool(outcome.waiting)
        cursor = str(new[-1].id) if new else context.cursor
        if not requests:
            why = f"{len(new)} new webhook(s) matched no trigger (see result in webhook_inbox)"
            if waiting:
                why = f"{waiting} webhook(s) wait for a job the code location does not have"
            return SensorResult(skip_reason=SkipReason(why), cursor=cursor)
        return SensorResult(run_requests=requests, cursor=cursor)

    return baton_webhook_sensor
