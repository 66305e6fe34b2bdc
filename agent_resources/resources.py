"""Agents as Dagster resources: one ConfigurableResource class per agent type.

A resource holds only the agent's slug; the catalog entry supplies the rest, and env var values
are read at call time, so no secret ever lands in Dagster's run config or snapshots.
"""

from __future__ import annotations

from typing import ClassVar

from dagster import ConfigurableResource
from pydantic import Field

from agent_resources.base import Agent, AgentRequest, AgentResult
from agent_resources.catalog import AgentEntry, agent_catalog
from agent_resources.types import build_agent

_BUILT: dict[tuple[str, str], Agent] = {}


class AgentResource(ConfigurableResource):
    """Calls the catalog agent named by ``slug``."""

    agent_type: ClassVar[str] = ""
    slug: str = Field(default="", description="The agent's slug in the catalog.")

    def entry(self) -> AgentEntry:
        """This agent's catalog entry."""
        return agent_catalog()[self.slug]

    def run(self, *, request: AgentRequest) -> AgentResult:
        """Call the agent with only its declared env vars.

        Args:
            request: The step's rendered input and identity.

        Raises:
            AgentError: The call failed; its ``retryable`` flag steers the step's retries.
        """
        entry = self.entry()
        key = (entry.slug, entry.model_dump_json())
        agent = _BUILT.get(key)
        if agent is None:
            agent = _BUILT[key] = build_agent(entry)
        return agent.run(request.model_copy(update={"env": entry.env_values()}))


class EchoAgentResource(AgentResource):
    """The built-in echo agent."""

    agent_type: ClassVar[str] = "echo"


class ContextAgentResource(AgentResource):
    """Context agents: chat completions over an OpenAI-compatible API, or offline."""

    agent_type: ClassVar[str] = "context"


class ApiAgentResource(AgentResource):
    """API agents: n8n-style workflows over HTTP."""

    agent_type: ClassVar[str] = "api"


class ToolAgentResource(AgentResource):
    """Tool agents: named, parameterized queries against a configured database."""

    agent_type: ClassVar[str] = "tool"


class FunctionAgentResource(AgentResource):
    """Function agents: catalog-held Python run in a limited subprocess."""

    agent_type: ClassVar[str] = "function"


class OrchestratorAgentResource(AgentResource):
    """Orchestrator agents: compose other agents."""

    agent_type: ClassVar[str] = "orchestrator"


RESOURCE_CLASSES: dict[str, type[AgentResource]] = {
    cls.agent_type: cls
    for cls in (
        EchoAgentResource,
        ContextAgentResource,
        ApiAgentResource,
        ToolAgentResource,
        FunctionAgentResource,
        OrchestratorAgentResource,
    )
}
