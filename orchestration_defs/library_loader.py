"""Loading the library folders and storing every definition version in the database."""

from __future__ import annotations

import logging

from agent_resources.catalog import agent_catalog
from baton.db import migrate
from baton.settings import Settings
from baton.store.service import RunStore
from orchestration_defs.language.errors import SpecErrors
from orchestration_defs.language.library import LoadedDefinition, latest_versions, load_library

log = logging.getLogger(__name__)


def prepare_database(settings: Settings) -> None:
    """Bring Baton's tables to the newest revision if allowed, else insist they are."""
    url = settings.db_url
    if migrate.is_current(url):
        return
    if not settings.auto_migrate:
        raise RuntimeError("Baton's tables are not at the newest revision; run `baton db upgrade`")
    migrate.upgrade(url)


def load_and_register(settings: Settings) -> list[LoadedDefinition]:
    """The newest version of each library definition, after storing all versions.

    Raises:
        SpecErrors: any file is invalid, or a stored version was changed in place.
    """
    loaded, errors = load_library(settings.library_dirs, known_agents=set(agent_catalog()))
    if errors:
        raise SpecErrors(errors)
    store = RunStore(settings.db_url)
    conflicts = []
    for item in loaded:
        spec = item.spec
        try:
            store.register_definition(
                organization=spec.organization,
                slug=spec.slug,
                version=spec.version,
                name=spec.name,
                spec=spec.model_dump(mode="json", by_alias=True),
                checksum=item.checksum,
                description=spec.description,
                source_path=str(item.path),
            )
        except Exception as exc:  # DefinitionConflict: collect them all
            conflicts.append(f"{item.path}: {exc}")
    if conflicts:
        raise RuntimeError("definition conflicts:\n" + "\n".join(conflicts))
    return latest_versions(loaded)
