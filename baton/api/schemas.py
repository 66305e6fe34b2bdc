"""Request and response bodies of the API, shared with the OpenAPI spec."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

from baton.edge import MAX_REASON_CHARS


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything Baton stores is UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _iso(value: datetime) -> str:
    # Pydantic writes UTC as "Z"; the delivery envelope, Dagster's timestamps and docs/api.md
    # use "+00:00": one format for every timestamp the API returns.
    return _utc(value).isoformat()


# The schema stays a date-time string (the serializer alone would make it a plain string).
UtcDatetime = Annotated[
    datetime,
    AfterValidator(_utc),
    PlainSerializer(_iso, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class Strict(BaseModel):
    """Request bodies refuse unknown keys, so a typo is an error, not a silent default."""

    model_config = ConfigDict(extra="forbid")


# orchestrations ---------------------------------------------------------------------------


class Orchestration(BaseModel):
    slug: str
    name: str
    version: int
    organization: str
    description: str | None = None
    inputs: dict[str, Any] = Field(description="The typed inputs of the newest version.")


class OrchestrationDetail(Orchestration):
    versions: list[int]
    spec: dict[str, Any] = Field(description="The newest version's definition as stored.")


class OrchestrationList(BaseModel):
    items: list[Orchestration]


class SpecProblem(BaseModel):
    line: int | None
    column: int | None
    field: str
    message: str


class ValidationResult(BaseModel):
    valid: bool
    slug: str | None = None
    version: int | None = None
    errors: list[SpecProblem]


# runs ----------------------------------------------------------------------------------------


class LaunchRequest(Strict):
    orchestration: str = Field(min_length=1, max_length=100, description="The slug.")
    inputs: dict[str, Any] = Field(default_factory=dict)


class Launched(BaseModel):
    run_id: str
    orchestration: str
    version: int
    status: str


class RunSummary(BaseModel):
    run_id: str
    orchestration: str
    version: int
    organization: str
    status: str
    inputs: dict[str, Any]
    outputs: dict[str, Any] | None
    error: dict[str, Any] | None
    parent_run_id: str | None
    created_by: str | None
    created_at: UtcDatetime
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None


class RunPage(BaseModel):
    items: list[RunSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: done.")


# baton.state.STEP_TRANSITIONS (a test checks they agree): cancelled is a step of an aborted
# run that was running, compensated one undone by its compensation.
StepStatus = Literal[
    "pending", "running", "waiting", "completed", "failed", "skipped", "cancelled", "compensated"
]


class Step(BaseModel):
    step_id: str
    status: StepStatus
    attempt: int
    agent: str | None
    input: Any = None
    output: Any = None
    error: dict[str, Any] | None
    dagster_run_id: str | None
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None
    cache: Literal["hit", "miss"] | None = Field(
        None,
        description="A step with `cache:`: `hit` (its output came from the step cache, no "
        "agent call) or `miss` (the agent was called and its answer stored); null otherwise.",
    )


class DeliverableView(BaseModel):
    id: str
    step_id: str
    name: str
    type: str
    version: int
    asset_uri: str | None
    mime_type: str | None
    size_bytes: int | None


class Segment(BaseModel):
    dagster_run_id: str
    status: str
    started_at: str | None
    finished_at: str | None
    parent_run_id: str | None
    url: str


class Vote(BaseModel):
    user: str
    decision: str
    modifications: dict[str, Any] | None
    comment: str | None
    at: UtcDatetime


class ChainLink(BaseModel):
    """A run above an approval (or the run that asks), root first."""

    run_id: str
    orchestration: str
    status: str
    parent_step: str | None = Field(None, description="The step of its parent that runs it.")
    index: int | None = Field(None, description="Its 0-based place in the step's for_each.")


class ApprovalView(BaseModel):
    approval_id: str
    run_id: str
    root_run_id: str | None = Field(
        None, description="The top run of the tree the approval's run belongs to."
    )
    chain: list[ChainLink] = Field(
        default_factory=list,
        description="The runs from the root down to the run that asks (one link for a root "
        "run's own checkpoint).",
    )
    where: str = Field(
        "",
        description='Where the run sits, e.g. "in kpi-tracking (child 2 of periods) of '
        'finance-manager run ID"; empty for a root run.',
    )
    step_id: str
    status: str
    organization: str
    prompt: str
    show: Any = None
    decisions: list[str] | None
    approvers: list[str] | None
    required_approvals: int | None
    modifiable: dict[str, Any] | None
    requested_by: str | None
    requested_at: UtcDatetime
    expires_at: UtcDatetime | None
    escalations: int
    decision: str | None
    decided_by: str | None
    decided_at: UtcDatetime | None
    comment: str | None
    modifications: dict[str, Any] | None
    diff: dict[str, Any] | None
    previous_approval_id: str | None
    claimed_by: str | None = Field(
        None, description="Who claimed the decision to launch the run's next segment."
    )
    claimed_at: UtcDatetime | None = None
    launch_error: str | None = Field(
        None,
        description="Why the claimed segment has not started yet (cleared once it has); the "
        "approval sensor keeps trying.",
    )
    launch_attempts: int = 0
    votes: list[Vote] | None = None


class CompensationStep(BaseModel):
    step_id: str
    position: int = Field(description="Its place in the compensation: 1 runs first.")
    status: str = Field(description="pending, running, completed or failed.")
    attempt: int
    agent: str
    error: dict[str, Any] | None
    dagster_run_id: str | None


class CompensationView(BaseModel):
    status: str = Field(description="pending, running, completed or failed.")
    error: str | None = Field(description="Why it failed, or why it has not started.")
    steps: list[CompensationStep] = Field(description="In the order they run.")


class RunDetail(RunSummary):
    steps: list[Step]
    approvals: list[ApprovalView]
    deliverables: list[DeliverableView]
    children: list[str]
    last_dagster_run_id: str | None
    segments: list[Segment] = Field(description="Dagster runs of this run, oldest first.")
    compensation: CompensationView | None = Field(
        None, description="The undoing of its completed steps (`compensate:`), if planned."
    )


class CompensationStarted(BaseModel):
    run_id: str
    compensation: str = Field(description="The run's compensation status after the request.")
    steps: list[str] = Field(description="The steps it undoes, in the order they run.")


class StepAction(BaseModel):
    run_id: str
    step_id: str
    action: Literal["retry", "skip"]
    status: str = Field(description="The run's status after the request.")
    audit_id: str | None = Field(None, description="The audit log entry of this action.")
    launched: bool = Field(
        True,
        description="A new segment starts (false: a pending step skipped ahead, which the "
        "run's own segment reuses when it gets there).",
    )


_REASON = Field(
    None, max_length=MAX_REASON_CHARS, description="Why (kept in the audit log, masked)."
)


class RetryRequest(Strict):
    reason: str | None = _REASON
    input: dict[str, Any] | None = Field(
        None,
        description="Replaces the step's rendered input from this attempt on (a new logical "
        "call); left out, the step runs with its rendered input (an orphaned step keeps its "
        "call and idempotency key).",
    )


class SkipRequest(Strict):
    reason: str | None = _REASON
    output: Any = Field(
        None,
        description="The step's output: later steps take it as its result. Left out, the "
        "step is skipped (output null) and steps that need only it are skipped too.",
    )


class AbortRequest(Strict):
    reason: str | None = _REASON


class CompensateRequest(Strict):
    reason: str | None = _REASON


class AuditEntry(BaseModel):
    id: str
    run_id: str
    step_id: str | None
    action: Literal["retry", "skip", "abort", "compensate"]
    by: str = Field(description="Who: the user name of the token, or the CLI's --as.")
    via: str = Field(description="Where from: api, cli, page, sensor.")
    reason: str | None
    details: dict[str, Any] = Field(description="The new input or given output (masked).")
    run_status: str | None = Field(description="The run's status when the action was asked.")
    step_status: str | None = Field(
        description="The step's status then (orphaned: a failed attempt the reaper ended)."
    )
    outcome: Literal["accepted", "refused"]
    message: str | None = Field(description="What was done, or why it was refused.")
    at: UtcDatetime


class AuditLog(BaseModel):
    items: list[AuditEntry] = Field(description="Oldest first.")


# approvals ----------------------------------------------------------------------------------


class ApprovalPage(BaseModel):
    items: list[ApprovalView]
    next_cursor: str | None


class DecisionRequest(Strict):
    decision: Literal["continue", "retry", "abort"]
    modifications: dict[str, Any] | None = None
    comment: str | None = Field(default=None, max_length=5000)


# events -------------------------------------------------------------------------------------


class Event(BaseModel):
    id: int = Field(description="The event's sequence number; SSE `id:` and Last-Event-ID.")
    run_id: str | None
    type: str
    payload: dict[str, Any]
    created_at: UtcDatetime


class EventPage(BaseModel):
    items: list[Event]
    next_cursor: str | None


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)
