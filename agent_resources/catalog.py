"""The agents Baton knows, without importing Dagster (the validator and CLI read this)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class AgentEntry:
    """What the catalog says of one agent."""

    slug: str
    type: str
    description: str
    env_vars: tuple[str, ...] = field(default_factory=tuple)

    @property
    def resource_key(self) -> str:
        """The Dagster resource key the agent is bound under."""
        return "agent_" + self.slug.replace("-", "_")


BUILTIN_AGENTS: tuple[AgentEntry, ...] = (
    AgentEntry(
        slug="echo",
        type="function",
        description="Returns its rendered input unchanged: for tests and for reshaping data.",
    ),
)


def agent_catalog() -> dict[str, AgentEntry]:
    """Every known agent by slug."""
    return {entry.slug: entry for entry in BUILTIN_AGENTS}
