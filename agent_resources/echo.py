"""The ``echo`` agent: its output is its rendered input."""

from __future__ import annotations

from agent_resources.base import AgentRequest, AgentResource, AgentResult


class EchoAgent(AgentResource):
    """Returns the step's rendered ``with`` unchanged; handy for tests and reshaping data."""

    def run(self, *, request: AgentRequest) -> AgentResult:
        """Echo the input back.

        Args:
            request: The step's rendered input.
        """
        return AgentResult(output=request.input)
