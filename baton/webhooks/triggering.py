"""Which orchestrations one stored webhook starts, and the segment that starts each.

The one owner of trigger evaluation: the webhook sensor and the API's fast path (the process
that accepted the webhook) both ask here, so both see the same runs with the same inputs.
Evaluating writes nothing; who may launch a fired run is decided in ``baton.webhooks.claims``.

Orchestration run ids of webhook runs are ``uuid5(NAMESPACE, "<source>/<webhook id>/<slug>")``,
the same on every evaluation, so a webhook seen twice names the same run.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import func, select

from baton import segments
from baton.db.models import OrchestrationDefinition
from baton.edge import input_limits
from baton.settings import get_settings
from baton.store.service import RunStore
from baton.webhooks.inbox import InboxItem
from orchestration_defs.language.inputs import InputError, resolve_inputs
from orchestration_defs.language.models import OrchestrationSpec
from orchestration_defs.language.templates import TemplateError
from orchestration_defs.language.triggers import WebhookTriggerSpec, webhook_context

SOURCE_TAG = "baton/webhook_source"
WEBHOOK_TAG = "baton/webhook_id"
# Seconds one trigger may spend rendering its filter and inputs (BATON_LIMITS__TEMPLATE_SECONDS
# if smaller).
TRIGGER_SECONDS = 2.0
NAMESPACE = uuid.UUID("6f1c3e55-0a8e-4a57-9d0b-2f63b7c1a9e4")


@dataclass(frozen=True)
class Fired:
    """A trigger of ``spec`` fired for a webhook: the run it starts, with these inputs."""

    spec: OrchestrationSpec
    inputs: dict[str, Any]
    run_id: uuid.UUID


@dataclass(frozen=True)
class Evaluation:
    """What one webhook fires, and why each other trigger did not."""

    fired: list[Fired]
    notes: list[str] = field(default_factory=list)


def run_key(source: str, webhook_id: str, slug: str) -> str:
    return f"webhook-{source}-{webhook_id}-{slug}"


def webhook_run_id(source: str, webhook_id: str, slug: str) -> uuid.UUID:
    """The orchestration run a webhook starts for one orchestration, the same on every tick."""
    return uuid.uuid5(NAMESPACE, f"{source}/{webhook_id}/{slug}")


def triggered_specs(store: RunStore) -> list[OrchestrationSpec]:
    """The newest stored version of each orchestration that has triggers.

    All of them, whether or not the code location has their job: a webhook for a job that is
    missing waits in the inbox (saying so) instead of being dropped.
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


def _fire(trigger: WebhookTriggerSpec, spec: OrchestrationSpec, item: InboxItem) -> Any:
    """The resolved inputs when the trigger fires, else a string saying why not."""
    context = webhook_context(
        item.body,
        webhook_id=item.webhook_id,
        source=item.source,
        received_at=item.received_at.isoformat(),
    )
    settings = get_settings()
    # Triggers render one webhook after another (in a sensor tick, or in the API's background
    # task): a slow one gets little time, so it cannot hold up the others.
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


def evaluate(item: InboxItem, specs: Sequence[OrchestrationSpec]) -> Evaluation:
    """The runs one stored webhook starts: at most one per orchestration, whichever of its
    triggers fired first, and only of the webhook's own organization."""
    fired: list[Fired] = []
    notes: list[str] = []
    for spec in specs:
        if spec.organization != item.organization:
            continue  # a source only starts runs of its own organization
        for trigger in spec.triggers:
            if trigger.webhook.source != item.source:
                continue
            result = _fire(trigger.webhook, spec, item)
            if isinstance(result, str):
                notes.append(result)
                continue
            run_id = webhook_run_id(item.source, item.webhook_id, spec.slug)
            fired.append(Fired(spec, result, run_id))
            break
    return Evaluation(fired, notes)


def segment_plan(
    store: RunStore,
    item: InboxItem,
    fired: Fired,
    *,
    segment_id: str,
    launched_by: str,
    keyed: bool,
) -> segments.SegmentPlan:
    """The first segment of a fired run. ``keyed``: it carries the run key the daemon dedupes
    a repeated sensor tick with (the fast path's carries none: its claim is its guard)."""
    key = run_key(item.source, item.webhook_id, fired.spec.slug) if keyed else None
    return segments.plan(
        fired.run_id,
        job=fired.spec.job_name,
        inputs=store.mask(fired.inputs),
        tags={
            SOURCE_TAG: item.source,
            WEBHOOK_TAG: item.webhook_id,
            segments.LAUNCHED_BY_TAG: launched_by,
        },
        run_key=key,
        segment_id=segment_id,
    )
