"""The sensors of the code location.

A sensor may only launch jobs it targets, and Dagster's ``jobs=`` wants the job *definitions*:
passing them would build every job of the library wherever the sensors are built. A target can
also be a job *name* (Dagster's ``AutomationTarget`` takes a string; the repository checks that
each name is one of its jobs, and the daemon resolves it through the code location's snapshot),
so the approval and webhook sensors target the jobs by name and nothing gets built for them.
"""

from __future__ import annotations

from collections.abc import Sequence

from dagster import Definitions, JobDefinition, SensorDefinition

# Private: the public decorator takes one name (``job_name``) or definitions (``jobs``), not
# several names; this is the type both are turned into.
from dagster._core.definitions.target import AutomationTarget

from baton.segments import compensated_job
from sensors.approvals import build_approval_sensor
from sensors.children import build_children_sensor
from sensors.compensation import baton_compensation_sensor, build_compensation_sensor
from sensors.reaper import baton_reaper_sensor, build_reaper_sensor
from sensors.run_failure import baton_run_failure_sensor
from sensors.segment_status import baton_segment_status_sensor
from sensors.timeouts import baton_checkpoint_timeout_sensor
from sensors.webhook_delivery import webhook_delivery_sensor
from sensors.webhooks import build_webhook_sensor


def targeting(sensor: SensorDefinition, job_names: Sequence[str]) -> SensorDefinition:
    """``sensor``, allowed to launch the jobs named (none of them is built)."""
    sensor._targets = [AutomationTarget(resolvable_to_job=name) for name in job_names]
    return sensor


def library_sensors(job_names: Sequence[str]) -> list[SensorDefinition]:
    """All of Baton's sensors; the approval, webhook, children and reaper sensors target the
    jobs named (the reaper launches the retries of orphaned steps), the compensation sensor
    the compensation jobs among them."""
    sensors = [
        baton_run_failure_sensor,
        baton_checkpoint_timeout_sensor,
        webhook_delivery_sensor,
        baton_segment_status_sensor,
    ]
    if not job_names:
        return [*sensors, baton_reaper_sensor, baton_compensation_sensor]
    names = list(job_names)
    return [
        *sensors,
        targeting(build_reaper_sensor(names), names),
        targeting(build_approval_sensor(names), names),
        targeting(build_webhook_sensor(names), names),
        targeting(build_children_sensor(names), names),
        _compensation_sensor(names),
    ]


def _compensation_sensor(names: Sequence[str]) -> SensorDefinition:
    """The compensation sensor, targeting the compensation jobs (none: it launches nothing)."""
    jobs = [name for name in names if compensated_job(name) is not None]
    sensor = build_compensation_sensor(jobs)
    return targeting(sensor, jobs) if jobs else sensor


def sensor_definitions(jobs: Sequence[JobDefinition | str]) -> Definitions:
    """The sensors as Definitions, for jobs given by definition or by name."""
    return Definitions(sensors=library_sensors([j if isinstance(j, str) else j.name for j in jobs]))
