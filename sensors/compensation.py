"""The compensation sensor: the safety net of ``baton.compensation``'s launches.

A run that failed inside a run worker (a step's last attempt, the finish op) has its
compensation planned but unclaimed: no launcher runs there, so this sensor claims it at its
next tick. A claim an abort or an operator's ``compensate`` made but did not start within
``BATON_SENSORS__CLAIM_LEASE_SECONDS`` (the process died, or its launch failed and released
it) is taken over, with a ``run.compensation_taken_over`` event. Every claim is a
compare-and-set, so a repeated tick launches nothing twice; the run key dedupes the rest.
A compensation whose job ended FAILURE or CANCELED while it was running (its worker died) is
marked failed, its interrupted rows kept for an operator's ``baton runs compensate``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from dagster import (
    DagsterInstance,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from baton import segments
from baton.compensation import Compensations
from baton.settings import EVERY_DAEMON_LOOP, get_settings
from orchestration_defs.compiler.resources import BatonStoreResource

VIA = "sensor"
# Dagster statuses of a run that will start, or did, on its own: not to be launched again.
HELD = ("QUEUED", "STARTING", "STARTED", "CANCELING")


def build_compensation_sensor(job_names: Sequence[str]) -> SensorDefinition:
    """The sensor for the code location's compensation jobs among ``job_names``."""
    known = {name for name in job_names if segments.compensated_job(name) is not None}

    @sensor(
        name="baton_compensation_sensor",
        # Every daemon loop: a failed run's compensation should not wait.
        minimum_interval_seconds=EVERY_DAEMON_LOOP,
        default_status=DefaultSensorStatus.RUNNING,
        description="Launches the compensations of aborted or failed runs that no process "
        "launched (a failure in a run worker, a claim past its lease).",
    )
    def baton_compensation_sensor(
        context: SensorEvaluationContext, baton_store: BatonStoreResource
    ) -> SensorResult | SkipReason:
        compensations = Compensations(baton_store.store())
        for run_id in compensations.interrupt_ended(lambda seg: ended(context.instance, seg)):
            context.log.warning(f"compensation of run {run_id} interrupted: marked failed")
        requests, waiting = evaluate(
            compensations, known, held=lambda seg: held(context.instance, seg)
        )
        for request in requests:
            context.log.info(f"launching compensations: {request.tags}")
        if requests:
            return SensorResult(run_requests=requests)
        if waiting:
            return SkipReason("; ".join(waiting))
        return SkipReason("no compensation waiting to be launched")

    return baton_compensation_sensor


def nothing_held(_segment: str) -> str | None:
    return None


def evaluate(
    compensations: Compensations,
    known: set[str],
    *,
    held: Callable[[str], str | None] = nothing_held,
) -> tuple[list[RunRequest], list[str]]:
    """The run requests of the compensations due now, and why others were not launched.
    ``held``: the status of a segment's Dagster run still queued or going (None: none is)."""
    lease = get_settings().sensors.claim_lease_seconds
    stale_before = datetime.now(UTC) - timedelta(seconds=lease)
    requests: list[RunRequest] = []
    waiting: list[str] = []
    for run in compensations.due(stale_before=stale_before):
        claimed = run.compensation_segment if run.compensation_claimed_by else None
        status = held(claimed) if claimed else None
        if status is not None:
            # Launched, but Dagster has not started it (a full run queue): taking it over
            # would launch the compensation a second time.
            waiting.append(
                f"run {run.id}: its compensation segment {claimed} is {status} in Dagster "
                "past the claim lease; it is not taken over"
            )
            continue
        segment = compensations.claim(run.id, by=VIA, stale_before=stale_before)
        if segment is None:
            continue  # another process claimed it just now
        if segment.job_name not in known:
            reason = f"job '{segment.job_name}' is not in the code location"
            compensations.release(segment, reason=reason)
            waiting.append(f"run {run.id}: {reason}")
            continue
        keyed = replace(segment, run_key=f"compensation:{segment.segment_id}")
        requests.append(segments.run_request(keyed))
    return requests, waiting


def ended(instance: DagsterInstance, segment: str) -> str | None:
    """The status a compensation segment's Dagster run ended with, if it ended FAILURE or
    CANCELED (None: still going, unknown, or it ended well)."""
    from dagster import DagsterRunStatus, RunsFilter

    runs = instance.get_runs(RunsFilter(tags={segments.SEGMENT_TAG: segment}))
    stopped = (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)
    if runs and all(run.status in stopped for run in runs):
        return str(runs[0].status.value)
    return None


def held(instance: DagsterInstance, segment: str) -> str | None:
    """The status of a Dagster run of ``segment`` that is queued or going (None: none is;
    one created and never submitted, NOT_STARTED, is lost and may be taken over)."""
    from dagster import RunsFilter

    for run in instance.get_runs(RunsFilter(tags={segments.SEGMENT_TAG: segment})):
        if run.status.value in HELD:
            return str(run.status.value)
    return None


# Without a library there is nothing to compensate; the sensor still shows why.
baton_compensation_sensor = build_compensation_sensor(())
