"""SQLAlchemy 2.0 models of Baton's state tables.

Every constraint and index is named (see ``NAMING``) so that migrations can address them on
SQLite and Postgres alike. Baton's tables hold *state*; Dagster's run storage holds
*execution*. Rows link to Dagster runs by id and never copy their logs.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from baton.db.types import UtcDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSONB on Postgres (indexable, compact); plain JSON text elsewhere.
JsonType = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments an INTEGER PRIMARY KEY, so the event sequence is INTEGER there.
SequenceType = BigInteger().with_variant(Integer(), "sqlite")

RUN_STATUSES = (
    "pending",
    "running",
    "awaiting_approval",
    "completed",
    "failed",
    "aborted",
    "awaiting_children",
)
STEP_STATUSES = (
    "pending",
    "running",
    "waiting",
    "completed",
    "failed",
    "skipped",
    "cancelled",
    "compensated",
)
COMPENSATION_STATUSES = ("pending", "running", "completed", "failed")
APPROVAL_STATUSES = ("pending", "decided", "resuming", "resumed", "expired", "cancelled")


def utcnow() -> datetime:
    """Timezone-aware now, the only clock the store uses."""
    return datetime.now(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JsonType, list[Any]: JsonType, Any: JsonType}


class OrchestrationDefinition(Base):
    """One version of one orchestration, as loaded from the library."""

    __tablename__ = "orchestration_definitions"
    __table_args__ = (
        UniqueConstraint("organization", "slug", "version"),
        Index("ix_orchestration_definitions_org_slug", "organization", "slug"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    organization: Mapped[str] = mapped_column(String(100))
    slug: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JsonType)
    checksum: Mapped[str] = mapped_column(String(64))
    source_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class OrchestrationRun(Base):
    """An orchestration run: launch to terminal state, across pauses and Dagster segments."""

    __tablename__ = "orchestration_runs"
    __table_args__ = (
        CheckConstraint(_in("status", RUN_STATUSES), name="status"),
        Index("ix_orchestration_runs_org_status", "organization", "status"),
        Index("ix_orchestration_runs_definition_id", "definition_id"),
        Index("ix_orchestration_runs_parent_run_id", "parent_run_id"),
        Index("ix_orchestration_runs_root_run_id", "root_run_id"),
        Index("ix_orchestration_runs_created_at", "created_at"),
        Index("ix_orchestration_runs_status", "status"),
        Index(
            "ix_orchestration_runs_parent_run_id_parent_step_id", "parent_run_id", "parent_step_id"
        ),
        Index("ix_orchestration_runs_compensation", "compensation"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    definition_id: Mapped[int] = mapped_column(
        ForeignKey("orchestration_definitions.id", ondelete="RESTRICT")
    )
    organization: Mapped[str] = mapped_column(String(100))
    orchestration: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32), default="pending")
    inputs: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    outputs: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)
    # Children are deleted with their parent: a sub-run has no meaning without it.
    parent_run_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("orchestration_runs.id", ondelete="CASCADE"), nullable=True
    )
    root_run_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("orchestration_runs.id", ondelete="CASCADE"), nullable=True
    )
    parent_step_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # A child's place among its parent step's children (for_each order), and the attempt of
    # the parent step that created it (a retried step creates a fresh set).
    parent_step_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    parent_step_attempt: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The claim to launch the run's next segment (a child's first, a parent's resume): the
    # children sensor takes over a claim whose segment has not started once its lease passed.
    launch_claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    launch_claimed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    launch_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    last_dagster_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The one segment allowed to do work (``baton/segment`` tag of its Dagster run); a launch
    # replaces it with a compare-and-set, and every step checks it again before it starts.
    segment_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # Compensation of completed steps after an abort or failure (baton.compensation): NULL is
    # nothing to do, else pending|running|completed|failed. The claim names the segment that
    # runs it; the compensation sensor takes over a claim not launched within its lease.
    compensation: Mapped[str | None] = mapped_column(String(16), nullable=True)
    compensation_segment: Mapped[str | None] = mapped_column(String(64), nullable=True)
    compensation_claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    compensation_claimed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    compensation_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class OrchestrationStep(Base):
    """One step of one orchestration run; its output is the memo later segments reuse."""

    __tablename__ = "orchestration_steps"
    __table_args__ = (
        UniqueConstraint("run_id", "step_id"),
        CheckConstraint(_in("status", STEP_STATUSES), name="status"),
        Index("ix_orchestration_steps_run_id_position", "run_id", "position"),
        Index("ix_orchestration_steps_dagster_run_id", "dagster_run_id"),
        Index("ix_orchestration_steps_status", "status"),
        Index("ix_orchestration_steps_retry_at", "retry_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("orchestration_runs.id", ondelete="CASCADE")
    )
    step_id: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[str] = mapped_column(String(32), default="agent")
    agent: Mapped[str | None] = mapped_column(String(100), nullable=True)
    status: Mapped[str] = mapped_column(String(32), default="pending")
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    # The logical call: the idempotency key's counter, moved on only by a deliberate retry.
    call_number: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    input: Mapped[Any | None] = mapped_column(JsonType, nullable=True)
    output: Mapped[Any | None] = mapped_column(JsonType, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)
    # The attempt's owner: the Dagster run that started it (the lease's holder).
    dagster_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Renewed while the owner's agent call runs; the reaper fails an attempt whose lease expired.
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # Set by a checkpoint's "retry" decision: merged over the rendered input on the next attempt.
    input_override: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)
    # Set by an operator's retry with a new input: replaces the rendered input from the next
    # attempt on (a new logical call), until another operator retry gives another one.
    input_replacement: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)
    # When the reaper retries this orphaned attempt under the step's retry policy; NULL once
    # the retry is taken (by the reaper or an operator) or the step moves on. Indexed: the
    # reaper's tick reads only the due ones, whatever the history.
    retry_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # A step with ``cache:``: 'hit' (its output came from the step cache, no agent call) or
    # 'miss' (the agent was called and its answer stored); NULL for steps without a cache.
    cache: Mapped[str | None] = mapped_column(String(8), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class HumanApproval(Base):
    """A checkpoint's request for a human decision, and the decision once made."""

    __tablename__ = "human_approvals"
    __table_args__ = (
        CheckConstraint(_in("status", APPROVAL_STATUSES), name="status"),
        Index("ix_human_approvals_status_requested_at", "status", "requested_at"),
        Index("ix_human_approvals_run_id", "run_id"),
        Index("ix_human_approvals_expires_at", "expires_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("orchestration_runs.id", ondelete="CASCADE")
    )
    step_id: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(32), default="pending")
    decision: Mapped[str | None] = mapped_column(String(32), nullable=True)
    modifications: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    organization: Mapped[str] = mapped_column(String(100), default="global")
    prompt: Mapped[str] = mapped_column(Text, default="")
    show: Mapped[Any | None] = mapped_column(JsonType, nullable=True)
    # The checkpoint's rules as they were when requested: decisions, approvers, required
    # approvals, self-approval, modifiable fields, timeout action (escalation changes them).
    policy: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    requested_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # The exact change an approver made: {field: {"from": old, "to": new}}.
    diff: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)
    escalations: Mapped[int] = mapped_column(Integer, default=0)
    previous_approval_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("human_approvals.id", ondelete="SET NULL"), nullable=True
    )
    dagster_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    resumed_dagster_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Who claimed the decision to launch its segment, and when: a claim older than the lease
    # with no segment behind it is taken over (guarded on claimed_at) by the safety-net sensor.
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # Why the claimed segment has not started (no such job, launch failed), until it does.
    launch_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    launch_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class OrchestrationEvent(Base):
    """Append-only log of what happened to runs; the sequence orders all events globally."""

    __tablename__ = "orchestration_events"
    __table_args__ = (
        Index("ix_orchestration_events_run_id_sequence", "run_id", "sequence"),
        Index("ix_orchestration_events_created_at", "created_at"),
        # SQLite would reuse the sequence numbers of deleted newest rows without
        # AUTOINCREMENT; readers resuming "after sequence N" must never see a number twice.
        {"sqlite_autoincrement": True},
    )

    sequence: Mapped[int] = mapped_column(SequenceType, primary_key=True, autoincrement=True)
    run_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("orchestration_runs.id", ondelete="CASCADE"), nullable=True
    )
    organization: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


OPERATOR_ACTIONS = ("abort", "retry", "skip", "compensate")
OPERATOR_OUTCOMES = ("accepted", "refused")


class OperatorAction(Base):
    """The audit log of operator interventions: who did (or tried) what to a run, and why.

    Written in the same transaction as the change it records; a refusal in its own.
    """

    __tablename__ = "operator_actions"
    __table_args__ = (
        CheckConstraint(_in("action", OPERATOR_ACTIONS), name="action"),
        CheckConstraint(_in("outcome", OPERATOR_OUTCOMES), name="outcome"),
        Index("ix_operator_actions_run_id_created_at", "run_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    organization: Mapped[str] = mapped_column(String(100))
    # The audit dies with its run (runs are deleted only as a whole, with their history).
    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey(
            "orchestration_runs.id",
            ondelete="CASCADE",
            name="fk_operator_actions_run_id_orchestration_runs",
        )
    )
    step_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    action: Mapped[str] = mapped_column(String(16))
    by: Mapped[str] = mapped_column(String(200))
    # cli, api, page or sensor (the lifecycle's caller); not a CHECK, so a new caller needs no
    # migration.
    via: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The new input or the given output, masked (secrets never stored in clear).
    details: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    run_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    step_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    outcome: Mapped[str] = mapped_column(String(16))
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class AgentRecord(Base):
    """The catalog entry of an agent as last seeded (the YAML files are the source)."""

    __tablename__ = "agents"

    slug: Mapped[str] = mapped_column(String(100), primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text)
    config: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    env: Mapped[list[Any]] = mapped_column(JsonType, default=list)
    limits: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    checksum: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class Deliverable(Base):
    """Something a step produced for people: content inline, or bytes in the asset store."""

    __tablename__ = "deliverables"
    __table_args__ = (
        UniqueConstraint("run_id", "step_id", "name", "version"),
        Index("ix_deliverables_run_id_step_id", "run_id", "step_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("orchestration_runs.id", ondelete="CASCADE")
    )
    step_id: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(64))
    content: Mapped[Any | None] = mapped_column(JsonType, nullable=True)
    asset_uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    mime_type: Mapped[str | None] = mapped_column(String(100), nullable=True)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # `metadata` is reserved by SQLAlchemy's declarative base, hence the attribute name.
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JsonType, default=dict)
    version: Mapped[int] = mapped_column(Integer, default=1)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    dagster_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class User(Base):
    """A person who may approve: their organization and groups."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("organization", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    organization: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    groups: Mapped[list[Any]] = mapped_column(JsonType, default=list)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class ApprovalVote(Base):
    """One approver's decision on an approval; several are needed when required_approvals > 1."""

    __tablename__ = "approval_votes"
    __table_args__ = (UniqueConstraint("approval_id", "user_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    approval_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("human_approvals.id", ondelete="CASCADE")
    )
    user_name: Mapped[str] = mapped_column(String(200))
    decision: Mapped[str] = mapped_column(String(32))
    modifications: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


API_ROLES = ("viewer", "operator", "approver", "admin")


class ApiToken(Base):
    """A bearer token of the HTTP API: a user's, with one role; only its hash is stored."""

    __tablename__ = "api_tokens"
    __table_args__ = (
        CheckConstraint(_in("role", API_ROLES), name="role"),
        Index("ix_api_tokens_token_hash", "token_hash", unique=True),
        Index("ix_api_tokens_user_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # A token dies with its user: it speaks for them and no one else.
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE", name="fk_api_tokens_user_id_users")
    )
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(32))
    token_hash: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


WEBHOOK_INBOX_STATUSES = ("pending", "processed", "ignored")
DELIVERY_STATUSES = ("pending", "delivered", "failed")


class WebhookSource(Base):
    """A sender of inbound webhooks: its organization and its secret, encrypted at rest."""

    __tablename__ = "webhook_sources"
    __table_args__ = (UniqueConstraint("name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # Unique across organizations: the name is the path of POST /webhooks/{source}.
    name: Mapped[str] = mapped_column(String(100))
    organization: Mapped[str] = mapped_column(String(100))
    secret_encrypted: Mapped[str] = mapped_column(Text)
    # During a rotation the old secret stays valid until previous_valid_until.
    previous_secret_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
    previous_valid_until: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    rotated_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class WebhookInbox(Base):
    """An accepted inbound webhook, stored before the answer so none is lost."""

    __tablename__ = "webhook_inbox"
    __table_args__ = (
        UniqueConstraint("source", "webhook_id"),
        CheckConstraint(_in("status", WEBHOOK_INBOX_STATUSES), name="status"),
        Index("ix_webhook_inbox_status_id", "status", "id"),
        # The sensor's cursor is the last id; ids must never be reused.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(SequenceType, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(100))
    organization: Mapped[str] = mapped_column(String(100))
    webhook_id: Mapped[str] = mapped_column(String(255))
    body: Mapped[Any] = mapped_column(JsonType)
    status: Mapped[str] = mapped_column(String(32), default="pending")
    # What the sensor did with it: the run keys it requested, or why none.
    result: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class WebhookSubscription(Base):
    """An organization's outbound endpoint and the event types it wants."""

    __tablename__ = "webhook_subscriptions"
    __table_args__ = (Index("ix_webhook_subscriptions_organization", "organization"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    organization: Mapped[str] = mapped_column(String(100))
    url: Mapped[str] = mapped_column(Text)
    secret_encrypted: Mapped[str] = mapped_column(Text)
    event_types: Mapped[list[Any]] = mapped_column(JsonType, default=list)
    # The dispatcher's cursor: the last orchestration_events.sequence considered.
    last_sequence: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class WebhookDelivery(Base):
    """One event sent (or to be sent) to one subscription, with its attempts."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_sequence"),
        CheckConstraint(_in("status", DELIVERY_STATUSES), name="status"),
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subscription_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_subscriptions.id", ondelete="CASCADE")
    )
    event_sequence: Mapped[int] = mapped_column(BigInteger)
    event_type: Mapped[str] = mapped_column(String(64))
    # The webhook-id: the same on every attempt, so receivers can deduplicate.
    webhook_id: Mapped[str] = mapped_column(String(255))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonType)
    status: Mapped[str] = mapped_column(String(32), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class LibraryFile(Base):
    """One file of the library as the last sync found it: the job it gives, or its errors.

    The code server writes these rows when it loads the library; a run worker reads its job's
    definition through ``job_name`` instead of parsing the library, and operators read the
    problems (files whose ``errors`` are not empty) from the CLI, the API and the Dagster UI.
    """

    __tablename__ = "library_files"
    __table_args__ = (
        UniqueConstraint("path"),
        Index("ix_library_files_job_name", "job_name"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    path: Mapped[str] = mapped_column(String(1024))
    # The version this file stored, if it is valid; its job if it is its slug's newest version.
    definition_id: Mapped[int | None] = mapped_column(
        ForeignKey("orchestration_definitions.id", ondelete="SET NULL"), nullable=True
    )
    job_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # Every problem found in the file: {"line", "column", "path", "message", "text"}.
    errors: Mapped[list[Any]] = mapped_column(JsonType, default=list)
    synced_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class StepCompensation(Base):
    """The compensation of one completed step of an aborted or failed run, recorded like a
    step: its attempts, the logical call (the idempotency key's counter), input and output."""

    __tablename__ = "step_compensations"
    __table_args__ = (
        UniqueConstraint("run_id", "step_id", name="uq_step_compensations_run_id_step_id"),
        CheckConstraint(_in("status", COMPENSATION_STATUSES), name="status"),
        Index("ix_step_compensations_status", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey(
            "orchestration_runs.id",
            ondelete="CASCADE",
            name="fk_step_compensations_run_id_orchestration_runs",
        )
    )
    step_id: Mapped[str] = mapped_column(String(100))
    # Its place in the run's compensation: 1 undoes the step that completed last.
    position: Mapped[int] = mapped_column(Integer, default=0)
    agent: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    call_number: Mapped[int] = mapped_column(Integer, default=0)
    input: Mapped[Any | None] = mapped_column(JsonType, nullable=True)
    output: Mapped[Any | None] = mapped_column(JsonType, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)
    dagster_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class StepCacheEntry(Base):
    """A stored answer of an agent to one rendered input (a step's ``cache:``), reused by any
    step of the organization that calls the same agent, at the same configuration, with the
    same input, until its ttl (counted from ``created_at``) runs out. The output is masked."""

    __tablename__ = "step_cache"
    __table_args__ = (
        UniqueConstraint(
            "organization", "agent", "agent_version", "input_hash", name="uq_step_cache_key"
        ),
        Index("ix_step_cache_expires_at", "expires_at"),
        Index("ix_step_cache_orchestration_step_id", "orchestration", "step_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    organization: Mapped[str] = mapped_column(String(100))
    agent: Mapped[str] = mapped_column(String(100))
    # SHA-256 of the agent's catalog entry: a changed configuration is another key.
    agent_version: Mapped[str] = mapped_column(String(64))
    # SHA-256 of the rendered input's canonical JSON (never the input itself).
    input_hash: Mapped[str] = mapped_column(String(64))
    # Where the answer came from (for `baton cache list` and invalidation by step).
    orchestration: Mapped[str] = mapped_column(String(100))
    step_id: Mapped[str] = mapped_column(String(100))
    run_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    output: Mapped[Any | None] = mapped_column(JsonType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    # created_at + the writing step's ttl: what purging goes by (a reader uses its own ttl).
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
