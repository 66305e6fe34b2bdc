"""The one small interface every agent resource implements: a request in, a result out."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from dagster import ConfigurableResource
from pydantic import BaseModel, Field


class AgentRequest(BaseModel):
    """What a step asks of its agent."""

    run_id: str = Field(description="The orchestration run id.")
    step_id: str
    attempt: int = Field(ge=1)
    input: Any = Field(description="The step's rendered `with`.")
    timeout_seconds: float | None = None

    @property
    def idempotency_key(self) -> str:
        """Stable per (run, step, attempt): lets a world-changing call be made only once."""
        return f"{self.run_id}:{self.step_id}:{self.attempt}"


class AgentResult(BaseModel):
    """What the agent gives back."""

    output: Any = None
    usage: dict[str, Any] = Field(default_factory=dict)


class AgentError(Exception):
    """An agent call that failed; ``retryable`` says whether trying again can help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class AgentResource(ConfigurableResource):
    """Base class of agent resources."""

    @abstractmethod
    def run(self, *, request: AgentRequest) -> AgentResult:
        """Call the agent.

        Args:
            request: The step's rendered input and identity.

        Raises:
            AgentError: The call failed; its ``retryable`` flag steers the step's retries.
        """
