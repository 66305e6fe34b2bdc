"""The sensors' Definitions."""

from __future__ import annotations

from collections.abc import Sequence

from dagster import Definitions, JobDefinition

from sensors.approvals import build_approval_sensor
from sensors.run_failure import baton_run_failure_sensor
from sensors.timeouts import baton_checkpoint_timeout_sensor
from sensors.webhook_delivery import webhook_delivery_sensor
from sensors.webhooks import build_webhook_sensor


def sensor_definitions(jobs: Sequence[JobDefinition]) -> Definitions:
    """All of Baton's sensors; the approval sensor targets the code location's jobs."""
    sensors = [baton_run_failure_sensor, baton_checkpoint_timeout_sensor, webhook_delivery_sensor]
    if jobs:
        sensors.append(build_approval_sensor([j.name for j in jobs], jobs))
        sensors.append(build_webhook_sensor([j.name for j in jobs], jobs))
    return Definitions(sensors=sensors)
