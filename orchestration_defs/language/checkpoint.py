"""The ``checkpoint:`` step: a human decision point that pauses the run without a worker."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Decision = Literal["continue", "retry", "abort"]
FieldType = Literal["string", "integer", "number", "boolean", "array", "object"]
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
Duration = Annotated[str, Field(pattern=_DURATION.pattern, description="e.g. 90s, 30m, 24h, 7d")]
ALL_DECISIONS: list[Decision] = ["continue", "retry", "abort"]


def parse_duration(value: str) -> timedelta:
    """``24h`` -> 24 hours (units s, m, h, d, w).

    Raises:
        ValueError: not a duration.
    """
    match = _DURATION.match(value)
    if match is None:
        raise ValueError(f"not a duration: {value!r} (expected e.g. 90s, 30m, 24h, 7d)")
    return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Escalation(_Strict):
    """Who takes over when nobody decided in time, and what happens if they do not either."""

    to: list[str] = Field(min_length=1, description="Users or groups who may now decide.")
    timeout: Duration | None = Field(None, description="New deadline after escalating.")
    on_timeout: Literal["abort", "continue", "fail"] = "fail"


class EscalateAction(_Strict):
    escalate: Escalation


TimeoutAction = Literal["abort", "continue", "fail"] | EscalateAction


class Notify(_Strict):
    """Where a pending approval is announced."""

    webhook: str = Field(pattern=r"^https?://", description="POSTed a JSON notice.")
    headers: dict[str, str] = Field(default_factory=dict)


class CheckpointSpec(_Strict):
    """A decision a person makes before the run goes on."""

    prompt: str = Field(min_length=1, description="What the approver is asked (templated).")
    show: Any = Field(None, description="What the approver reviews (templated).")
    decisions: list[Decision] = Field(default_factory=lambda: list(ALL_DECISIONS))
    retry_step: str | None = Field(
        None, description="The step a retry re-runs; default the step the checkpoint follows."
    )
    modifiable: dict[str, FieldType] = Field(
        default_factory=dict,
        description="Fields an approver may change, with their types: of `show` on continue, "
        "of the retry step's input on retry.",
    )
    approvers: list[str] = Field(
        default_factory=list, description="Users or groups who may decide; empty: anyone."
    )
    required_approvals: int = Field(1, ge=1, le=20)
    allow_self_approval: bool = False
    timeout: Duration | None = None
    on_timeout: TimeoutAction = "fail"
    notify: list[Notify] = Field(default_factory=list)

    @field_validator("decisions")
    @classmethod
    def _unique(cls, value: list[Decision]) -> list[Decision]:
        if not value:
            raise ValueError("at least one decision is needed")
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _consistent(self) -> CheckpointSpec:
        if self.on_timeout != "fail" and self.timeout is None:
            raise ValueError("on_timeout needs a timeout")
        return self

    def timeout_policy(self) -> dict[str, Any]:
        """``on_timeout`` as plain data for the stored approval policy."""
        if isinstance(self.on_timeout, EscalateAction):
            return {"action": "escalate", **self.on_timeout.escalate.model_dump()}
        return {"action": self.on_timeout}
