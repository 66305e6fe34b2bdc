"""The delivery sensor: sends outbound webhooks, outside every run worker.

Each tick records deliveries for new events and attempts the due ones (``baton.webhooks.
delivery``). Runs only append events; this sensor alone talks to subscribers, so a slow or
failing endpoint delays its own deliveries and nothing else.
"""

from __future__ import annotations

from dagster import (
    DefaultSensorStatus,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from baton.settings import get_settings
from baton.webhooks.delivery import UNDECRYPTABLE, Dispatcher
from orchestration_defs.compiler.resources import BatonStoreResource


@sensor(
    name="webhook_delivery_sensor",
    minimum_interval_seconds=get_settings().webhooks.delivery_interval_seconds,
    default_status=DefaultSensorStatus.RUNNING,
    description="Sends orchestration events to webhook subscribers, with retries and backoff.",
)
def webhook_delivery_sensor(
    context: SensorEvaluationContext, baton_store: BatonStoreResource
) -> SkipReason:
    dispatcher = Dispatcher(baton_store.store().url, get_settings())
    try:
        queued = dispatcher.enqueue()
        attempts = dispatcher.send_due()
    finally:
        dispatcher.close()
    delivered = sum(1 for a in attempts if a.status == "delivered")
    failed = sum(1 for a in attempts if a.status == "failed")
    retrying = len(attempts) - delivered - failed
    unsent = sum(1 for a in attempts if a.error == UNDECRYPTABLE)
    # This sensor launches no runs; the skip reason is its report on the sensor page.
    report = f"queued {queued}, delivered {delivered}, will retry {retrying}, failed {failed}"
    if unsent:
        # Not the endpoint's fault: say so where an operator looks first.
        report += f"; {unsent} not sent: {UNDECRYPTABLE} (`baton doctor` names the subscriptions)"
    return SkipReason(report)
