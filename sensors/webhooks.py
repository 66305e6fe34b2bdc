"""The webhook sensor: webhooks stored in the inbox start runs of the orchestrations whose
``triggers`` name their source.

It is the safety net of the fast path: the API process that accepted a webhook starts its runs
itself (``Lifecycle.start_from_webhook``), and the sensor launches only what no process did,
what a failed launch handed back, or what a claim left unstarted past its lease
(``baton.webhooks.claims``). Trigger evaluation is shared with the API
(``baton.webhooks.triggering``).

Exactly-once: every request carries ``run_key = webhook-<source>-<webhook id>-<slug>`` and
the orchestration run's id is derived from the same three values, so a tick evaluated again
(the cursor is written with the tick's requests) asks for the same run, which the daemon
dedupes. The inbox is selected by cursor, not by status, for that reason: a row marked
processed by a tick that crashed before its requests were stored is seen again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from baton import segments
from baton.settings import get_settings
from baton.store.service import RunStore
from baton.webhooks.claims import DONE, REQUEST, WAIT, Started, WebhookClaims, sensor_segment
from baton.webhooks.inbox import Inbox, InboxItem
from baton.webhooks.triggering import (
    SOURCE_TAG,
    WEBHOOK_TAG,
    run_key,
    segment_plan,
    triggered_specs,
    webhook_run_id,
)
from baton.webhooks.triggering import (
    evaluate as evaluate_triggers,
)
from orchestration_defs.compiler.resources import BatonStoreResource
from orchestration_defs.language.models import OrchestrationSpec

__all__ = [
    "SOURCE_TAG",
    "WEBHOOK_TAG",
    "build_webhook_sensor",
    "evaluate",
    "run_key",
    "triggered_specs",
    "webhook_run_id",
]
BATCH = 100


@dataclass(frozen=True)
class Outcome:
    """What one webhook produced: run requests, and why each other trigger did not fire."""

    requests: list[RunRequest]
    notes: list[str]
    waiting: list[str] = field(default_factory=list)
    started: int = 0  # runs the fast path started (nothing to request for them)


def started_in(instance: DagsterInstance) -> Started:
    """Whether a segment has a Dagster run that left NOT_STARTED (queued counts: it will run)."""

    def started(segment_id: str) -> str | None:
        records = instance.get_run_records(
            RunsFilter(tags={segments.SEGMENT_TAG: segment_id}), limit=5
        )
        for record in records:
            if record.dagster_run.status != DagsterRunStatus.NOT_STARTED:
                return str(record.dagster_run.run_id)
        return None

    return started


def evaluate(
    store: RunStore,
    item: InboxItem,
    specs: Sequence[OrchestrationSpec],
    job_names: Sequence[str] | None = None,
    started: Started | None = None,
) -> Outcome:
    """The runs one stored webhook still needs launched; triggers that fired for a job the
    code location does not have (``job_names``), and fast-path claims not yet due, wait."""
    evaluation = evaluate_triggers(item, specs)
    claims = WebhookClaims(store)
    lease = get_settings().sensors.claim_lease_seconds
    requests: list[RunRequest] = []
    notes, waiting = list(evaluation.notes), []
    started_by_fast_path = 0
    for fired in evaluation.fired:
        if job_names is not None and fired.spec.job_name not in job_names:
            waiting.append(
                f"{fired.spec.slug}: job '{fired.spec.job_name}' is not in the code location"
            )
            continue
        decision = claims.decide(item, fired, lease_seconds=lease, started=started or _never)
        if decision.action == WAIT:
            waiting.append(decision.reason)
            continue
        if decision.reason:
            notes.append(decision.reason)
        if decision.action == DONE:
            started_by_fast_path += 1
            continue
        assert decision.action == REQUEST
        plan = segment_plan(
            store,
            item,
            fired,
            segment_id=sensor_segment(fired.run_id),
            launched_by="webhook",
            keyed=True,
        )
        requests.append(segments.run_request(plan))
    return Outcome(requests, notes, waiting, started_by_fast_path)


def _never(_segment_id: str) -> str | None:
    return None


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
        status = "processed" if keys or outcome.started else "ignored"
        if status == "ignored":
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
        started = started_in(context.instance)
        requests: list[RunRequest] = []
        waiting = fast = 0
        for item in [*held, *new]:
            outcome = evaluate(store, item, specs, job_names, started)
            requests.extend(outcome.requests)
            _record(context, inbox, item, outcome)
            waiting += bool(outcome.waiting)
            fast += outcome.started
        cursor = str(new[-1].id) if new else context.cursor
        if not requests:
            why = f"{len(new)} new webhook(s) matched no trigger (see result in webhook_inbox)"
            if fast:
                why = f"{fast} run(s) already started by the fast path; nothing to launch"
            if waiting:
                why = (
                    f"{waiting} webhook(s) wait for a job the code location does not have or "
                    "for a fast-path claim to start or expire (see result in webhook_inbox)"
                )
            return SensorResult(skip_reason=SkipReason(why), cursor=cursor)
        return SensorResult(run_requests=requests, cursor=cursor)

    return baton_webhook_sensor
