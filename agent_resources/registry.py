"""The agent resources to bind in Definitions, keyed by their resource key."""

from __future__ import annotations

from agent_resources.base import AgentResource
from agent_resources.catalog import agent_catalog
from agent_resources.echo import EchoAgent

_FACTORIES: dict[str, type[AgentResource]] = {"echo": EchoAgent}


def agent_resources() -> dict[str, AgentResource]:
    """One configured resource per catalog agent."""
    return {entry.resource_key: _FACTORIES[slug]() for slug, entry in agent_catalog().items()}
