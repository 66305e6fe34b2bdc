"""The agent resources to bind in Definitions, keyed by their resource key."""

from __future__ import annotations

from agent_resources.catalog import agent_catalog
from agent_resources.resources import RESOURCE_CLASSES, AgentResource


def agent_resources() -> dict[str, AgentResource]:
    """One resource per catalog agent, of its type's class."""
    return {
        entry.resource_key: RESOURCE_CLASSES[entry.type](slug=entry.slug)
        for entry in agent_catalog().values()
    }
