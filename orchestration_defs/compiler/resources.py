"""The store as a Dagster resource."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field

from baton.settings import get_settings
from baton.store.service import RunStore


class BatonStoreResource(ConfigurableResource):
    """Baton's state tables. The URL comes from settings so no secret lands in run config."""

    database_url: str = Field(
        default="", description="Leave empty to use BATON_DATABASE_URL (the usual choice)."
    )

    def store(self) -> RunStore:
        """The store at the configured database."""
        return RunStore(self.database_url or get_settings().db_url)


def default_resources() -> dict[str, ConfigurableResource]:
    """The store and one resource per catalog agent, as the code location binds them."""
    from agent_resources.registry import agent_resources
    from orchestration_defs.compiler.common import STORE_KEY

    return {STORE_KEY: BatonStoreResource(), **agent_resources()}
