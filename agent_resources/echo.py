"""The ``echo`` agent: its output is its rendered input."""

from __future__ import annotations

from pydantic import BaseModel

from agent_resources.base import Agent, AgentRequest, AgentResult


class EchoConfig(BaseModel):
    """Echo takes no configuration."""


class EchoAgent(Agent):
    """Returns the step's rendered ``with`` unchanged; handy for tests and reshaping data."""

    config_model = EchoConfig

    def run(self, request: AgentRequest) -> AgentResult:
        return AgentResult(output=request.input)
