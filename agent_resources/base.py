"""The one small interface every agent implements: a typed request in, a typed result out.

Nothing here imports Dagster: agents know nothing of jobs or sensors. The Dagster resources
that wrap them are in ``agent_resources.resources``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from agent_resources.cancel import Cancellation
from agent_resources.catalog import AgentEntry

ErrorKind = Literal[
    "rate_limited",
    "server",
    "timeout",
    "client",
    "validation",
    "bad_response",
    "limit",
    "config",
    "sandbox",
    "internal",
]
_RETRYABLE_KINDS = frozenset({"rate_limited", "server", "timeout", "bad_response"})


class AgentRequest(BaseModel):
    """What a step asks of its agent."""

    run_id: str = Field(description="The orchestration run id.")
    step_id: str
    attempt: int = Field(ge=1, description="Dagster's tries of this step, re-executions included.")
    call: int | None = Field(
        default=None,
        ge=1,
        description=(
            "The logical call's number: it changes only on a deliberate retry (the step's "
            "retry policy or an operator's retry), never on a re-execution of an interrupted "
            "attempt. None: the attempt number."
        ),
    )
    input: Any = Field(description="The step's rendered `with`.")
    orchestration: str = ""
    timeout_seconds: float | None = None
    env: Mapping[str, str] = Field(
        default_factory=dict, description="Only the env vars the agent's entry declares."
    )

    # Shared by the copies the resources make, so the caller can stop the agent's own work.
    _cancellation: Cancellation = PrivateAttr(default_factory=Cancellation)

    @property
    def cancellation(self) -> Cancellation:
        """Set when the step's timeout passes or its run is aborted: agents close their
        clients and kill their processes on it."""
        return self._cancellation

    @property
    def idempotency_key(self) -> str:
        """Stable per logical call (run, step, call): an agent honouring it does the work once,
        however often a crash makes Dagster re-execute the step."""
        number = self.call if self.call is not None else self.attempt
        return f"{self.run_id}:{self.step_id}:{number}"


class DeliverableDraft(BaseModel):
    """Something a step produced for people: text/JSON content, or bytes kept as an asset."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    type: str = Field(description="e.g. text, json, image, report")
    name: str = "result"
    content: Any = None
    data: bytes | None = Field(default=None, description="Bytes to keep in the asset store.")
    mime_type: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class AgentResult(BaseModel):
    """What the agent gives back."""

    output: Any = None
    usage: dict[str, Any] = Field(default_factory=dict)
    deliverables: list[DeliverableDraft] = Field(default_factory=list)


class AgentError(Exception):
    """An agent call that failed; ``retryable`` says whether trying again can help.

    ``kind`` classifies it (rate_limited, server and timeout are retryable; client, validation,
    limit, config and sandbox are not); ``retry_after`` carries a server's Retry-After.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool | None = None,
        kind: ErrorKind = "internal",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.retryable = kind in _RETRYABLE_KINDS if retryable is None else retryable
        self.retry_after = retry_after


class Agent(ABC):
    """Base of agent implementations, built from a catalog entry.

    Subclasses set ``config_model`` (validates ``entry.config``) and ``input_model`` (what a
    step's ``with`` must look like; None accepts anything).
    """

    config_model: ClassVar[type[BaseModel]]
    input_model: ClassVar[type[BaseModel] | None] = None

    def __init__(self, entry: AgentEntry) -> None:
        self.entry = entry
        self.config = self.config_model.model_validate(entry.config)

    @classmethod
    def input_model_for(cls, entry: AgentEntry) -> type[BaseModel] | None:
        """The input model of one entry (types whose inputs vary per entry override this)."""
        return cls.input_model

    def parse_input(self, value: Any) -> Any:
        """The request input validated against the entry's input model.

        Raises:
            AgentError: the input does not fit (kind ``validation``).
        """
        model = self.input_model_for(self.entry)
        if model is None:
            return value
        try:
            return model.model_validate(value)
        except Exception as exc:
            raise AgentError(
                f"invalid input for agent '{self.entry.slug}': {exc}", kind="validation"
            ) from exc

    @abstractmethod
    def run(self, request: AgentRequest) -> AgentResult:
        """Call the agent.

        Raises:
            AgentError: the call failed; ``retryable`` steers the step's retries.
        """
