"""Which implementation serves each agent type (imported lazily: some pull in httpx)."""

from __future__ import annotations

from importlib import import_module

from agent_resources.base import Agent
from agent_resources.catalog import AgentEntry

IMPLEMENTATIONS: dict[str, str] = {
    "echo": "agent_resources.echo:EchoAgent",
    "context": "agent_resources.context:ContextAgent",
    "api": "agent_resources.api:ApiAgent",
    "tool": "agent_resources.tool:ToolAgent",
    "function": "agent_resources.function:FunctionAgent",
    "orchestrator": "agent_resources.orchestrator:OrchestratorAgent",
}


def implementation_class(agent_type: str) -> type[Agent]:
    """The Agent subclass for a type."""
    module, _, name = IMPLEMENTATIONS[agent_type].partition(":")
    cls = getattr(import_module(module), name)
    assert issubclass(cls, Agent)
    return cls


def build_agent(entry: AgentEntry) -> Agent:
    """An agent implementation configured from its catalog entry."""
    return implementation_class(entry.type)(entry)
