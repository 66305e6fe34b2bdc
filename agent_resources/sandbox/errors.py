"""The exceptions the agent's code meets in the sandbox child (standard library only)."""

from __future__ import annotations


class SandboxViolation(PermissionError):
    """The agent's code tried something the sandbox refuses."""


class AgentFailure(Exception):
    """Raised by the agent's code (``ctx.fail``), by ``ctx.check`` or by a failed ``ctx.http``
    call; ``retryable`` None leaves it to the kind."""

    def __init__(
        self,
        message: str,
        *,
        kind: str = "client",
        retryable: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable
        self.retry_after = retry_after


class OutputTooLarge(Exception):
    """The agent produced more bytes than its ``max_output_bytes``."""
