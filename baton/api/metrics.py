"""Prometheus metrics: in-process counters, and the rest read from Baton's tables per scrape.

The API process is not the run worker, so run, step and approval metrics cannot be counted
where they happen; a collector queries the tables when Prometheus scrapes instead. Counters
that only this process sees (inbound webhooks) live in ``PROCESS_REGISTRY``.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import ColumnElement, Float, case, cast, func, inspect, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from baton.db.engine import get_engine, session_scope
from baton.db.models import HumanApproval, OrchestrationRun, OrchestrationStep, utcnow
from baton.doctor import KINDS, waiting_on_system

log = logging.getLogger(__name__)

# Counters of this process only; part of every app's /metrics through a forwarding collector.
PROCESS_REGISTRY = CollectorRegistry()
webhooks_received = Counter(
    "baton_webhooks_received",
    "Inbound webhooks accepted (signature valid, stored in the inbox).",
    ["source"],
    registry=PROCESS_REGISTRY,
)
webhooks_refused = Counter(
    "baton_webhooks_refused",
    "Inbound webhooks refused, by reason (signature, timestamp, size, json, ...).",
    ["source", "reason"],
    registry=PROCESS_REGISTRY,
)
# A replayed id is answered 200 (the sender sees success, docs/api.md): not a refusal, and not
# a second accepted webhook either, since nothing new is stored.
webhooks_duplicate = Counter(
    "baton_webhooks_duplicate",
    "Inbound webhooks whose id the source had sent before: answered 200, not stored again.",
    ["source"],
    registry=PROCESS_REGISTRY,
)

# Agent calls take from milliseconds (echo) to many minutes (image generation, n8n).
STEP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
# People answer within minutes to days.
WAIT_BUCKETS = (10, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 259200, 604800)
# Part B's outbound deliveries; absent until its migration ran.
DELIVERIES_TABLE = "webhook_deliveries"


def _seconds_between(session: Session, start: Any, end: Any) -> ColumnElement[Any]:
    """``end - start`` in seconds, in the SQL of the session's database."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.extract("epoch", end - start), Float)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def _histogram(
    session: Session,
    name: str,
    doc: str,
    seconds: ColumnElement[Any],
    labels: Sequence[Any],
    label_names: list[str],
    where: Sequence[ColumnElement[bool]],
    buckets: Sequence[float],
) -> HistogramMetricFamily:
    """One histogram computed in SQL: a count per bucket, the total and the sum per label set."""
    inner = select(*labels, seconds.label("s")).where(*where).subquery()
    s = inner.c.s
    columns = [inner.c[label.key] for label in labels]
    per_bucket = [func.sum(case((s <= b, 1), else_=0)) for b in buckets]
    query = select(*columns, func.count(), func.sum(s), *per_bucket).group_by(*columns)
    family = HistogramMetricFamily(name, doc, labels=label_names)
    for row in session.execute(query):
        values = [str(v) for v in row[: len(columns)]]
        total, total_seconds = int(row[len(columns)]), float(row[len(columns) + 1] or 0)
        counts = [int(c or 0) for c in row[len(columns) + 2 :]]
        points = [(_le(b), float(c)) for b, c in zip(buckets, counts, strict=True)]
        family.add_metric(values, [*points, ("+Inf", float(total))], max(total_seconds, 0.0))
    return family


def _le(bound: float) -> str:
    return str(float(bound))


def _runs(session: Session) -> GaugeMetricFamily:
    run = OrchestrationRun
    family = GaugeMetricFamily(
        "baton_runs",
        "Orchestration runs by organization, orchestration and current status.",
        labels=["organization", "orchestration", "status"],
    )
    query = (
        select(run.organization, run.orchestration, run.status, func.count())
        .where(run.deleted_at.is_(None))
        .group_by(run.organization, run.orchestration, run.status)
    )
    for org, orchestration, status, count in session.execute(query):
        family.add_metric([org, orchestration, status], int(count))
    return family


def _step_durations(session: Session) -> HistogramMetricFamily:
    step = OrchestrationStep
    return _histogram(
        session,
        "baton_step_duration_seconds",
        "Duration of agent steps' last attempt (started to completed or failed), by agent.",
        _seconds_between(session, step.started_at, step.finished_at),
        [step.agent],
        ["agent"],
        [
            step.agent.is_not(None),
            step.started_at.is_not(None),
            step.finished_at.is_not(None),
            step.status.in_(("completed", "failed")),
        ],
        STEP_BUCKETS,
    )


def _step_retries(session: Session) -> CounterMetricFamily:
    step = OrchestrationStep
    family = CounterMetricFamily(
        "baton_step_retries",
        "Attempts of agent steps beyond the first, by agent.",
        labels=["agent"],
    )
    retries = func.sum(case((step.attempt > 1, step.attempt - 1), else_=0))
    query = select(step.agent, retries).where(step.agent.is_not(None)).group_by(step.agent)
    for agent, count in session.execute(query):
        family.add_metric([agent], float(count or 0))
    return family


def _step_cache(session: Session) -> CounterMetricFamily:
    step = OrchestrationStep
    family = CounterMetricFamily(
        "baton_step_cache",
        "Steps with a cache answered from it (hit) or by their agent (miss), by agent.",
        labels=["agent", "result"],
    )
    query = (
        select(step.agent, step.cache, func.count())
        .where(step.agent.is_not(None), step.cache.is_not(None))
        .group_by(step.agent, step.cache)
    )
    for agent, result, count in session.execute(query):
        family.add_metric([agent, result], float(count))
    return family


def _approvals_pending(session: Session) -> GaugeMetricFamily:
    approval = HumanApproval
    family = GaugeMetricFamily(
        "baton_approvals_pending",
        "Approvals waiting for a decision, by organization.",
        labels=["organization"],
    )
    pending = func.sum(case((approval.status == "pending", 1), else_=0))
    query = select(approval.organization, pending).group_by(approval.organization)
    for org, count in session.execute(query):
        family.add_metric([org], int(count or 0))
    return family


def _approvals_overdue(session: Session) -> GaugeMetricFamily:
    # The timeout sensor acts on a deadline within its interval (30 s by default): a pending
    # approval long past its deadline means the daemon or that sensor is not running.
    approval = HumanApproval
    family = GaugeMetricFamily(
        "baton_approvals_overdue",
        "Pending approvals whose deadline has passed (the timeout sensor has not acted yet).",
        labels=["organization"],
    )
    overdue = func.sum(
        case((approval.expires_at.is_not(None) & (approval.expires_at < utcnow()), 1), else_=0)
    )
    query = (
        select(approval.organization, overdue)
        .where(approval.status == "pending")
        .group_by(approval.organization)
    )
    for org, count in session.execute(query):
        family.add_metric([org], int(count or 0))
    return family


def _approval_wait(session: Session) -> HistogramMetricFamily:
    approval = HumanApproval
    return _histogram(
        session,
        "baton_approval_wait_seconds",
        "Time from an approval's request to its decision (or expiry).",
        _seconds_between(session, approval.requested_at, approval.decided_at),
        [],
        [],
        [approval.decided_at.is_not(None)],
        WAIT_BUCKETS,
    )


def _deliveries(session: Session) -> Iterator[Metric]:
    if not inspect(session.get_bind()).has_table(DELIVERIES_TABLE):
        return
    family = GaugeMetricFamily(
        "baton_webhook_deliveries",
        "Outbound webhook deliveries by status.",
        labels=["status"],
    )
    query = text(f"SELECT status, COUNT(*) FROM {DELIVERIES_TABLE} GROUP BY status")
    for status, count in session.execute(query):
        family.add_metric([str(status)], int(count))
    yield family


def _waiting(session: Session) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "baton_waiting_on_system",
        "Things that wait on the system rather than on a person (baton doctor lists them): "
        "decided approvals not claimed, claimed ones whose segment has not started, runs no "
        "Dagster run started, webhooks that started no run, invalid library files, stored "
        "webhook secrets no configured key decrypts.",
        labels=["kind"],
    )
    counts = collections.Counter(w.kind for w in waiting_on_system(session))
    for kind in KINDS:
        family.add_metric([kind], counts.get(kind, 0))
    return family


class DatabaseCollector(Collector):
    """Reads run, step, approval and delivery metrics from Baton's tables at scrape time."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "baton_metrics_database_up", "1 if Baton's tables could be read for this scrape."
        )
        try:
            metrics = self._read()
        except SQLAlchemyError as exc:
            # A scrape must answer even when the database does not; say so in a metric.
            log.warning("metrics: cannot read Baton's tables: %s", type(exc).__name__)
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        return [*metrics, up]

    def _read(self) -> list[Metric]:
        get_engine(self.db_url)  # a missing SQLite folder is created, not an error
        with session_scope(self.db_url) as session:
            return [
                _runs(session),
                _step_durations(session),
                _step_retries(session),
                _step_cache(session),
                _approvals_pending(session),
                _approvals_overdue(session),
                _approval_wait(session),
                _waiting(session),
                *_deliveries(session),
            ]


class _ProcessCollector(Collector):
    """Forwards the process-wide counters into an app's registry."""

    def collect(self) -> Iterable[Metric]:
        return PROCESS_REGISTRY.collect()


def build_registry(db_url: str) -> CollectorRegistry:
    """A registry of its own for one app: the database collector and the process counters."""
    registry = CollectorRegistry()
    registry.register(DatabaseCollector(db_url))
    registry.register(_ProcessCollector())
    return registry


def registry_for(app: FastAPI) -> CollectorRegistry:
    """The app's registry, built on first use from its settings' database URL."""
    registry = getattr(app.state, "metrics_registry", None)
    if registry is None:
        registry = build_registry(app.state.settings.db_url)
        app.state.metrics_registry = registry
    return registry
