"""The definition library: loading the folders and storing every version in the database.

Uses only the language and the agent catalog, so the CLI can load it without Dagster.
"""

from __future__ import annotations

from agent_resources.catalog import agent_catalog
from agent_resources.contracts import agent_input_checks
from baton.db import migrate
from baton.settings import Settings
from baton.store.definitions import DefinitionConflict
from baton.store.service import RunStore
from orchestration_defs.language.errors import SpecErrors
from orchestration_defs.language.library import LoadedDefinition, latest_versions, load_library


def prepare_database(settings: Settings) -> None:
    """Bring Baton's tables to the newest revision if allowed, else insist they are."""
    url = settings.db_url
    if migrate.is_current(url):
        return
    if not settings.auto_migrate:
        raise RuntimeError("Baton's tables are not at the newest revision; run `baton db upgrade`")
    migrate.upgrade(url)


def load_checked(settings: Settings) -> list[LoadedDefinition]:
    """Every valid definition in the library folders.

    Raises:
        SpecErrors: any file is invalid (all problems, with file and line).
    """
    loaded, errors = load_library(settings.library_dirs, known_agents=agent_input_checks())
    if errors:
        raise SpecErrors(errors)
    return loaded


def find_latest(settings: Settings, slug: str) -> LoadedDefinition | None:
    """The newest version of ``slug`` in the library, or None."""
    for item in latest_versions(load_checked(settings)):
        if item.spec.slug == slug:
            return item
    return None


def seed_catalog(store: RunStore) -> int:
    """Store every agent catalog entry (idempotent); returns how many rows changed."""
    return store.seed_agents([e.model_dump(mode="json") for e in agent_catalog().values()])


def load_and_register(settings: Settings) -> list[LoadedDefinition]:
    """The newest version of each library definition, after storing all versions.

    Raises:
        SpecErrors: any file is invalid, or a stored version was changed in place.
    """
    loaded = load_checked(settings)
    store = RunStore(settings.db_url)
    seed_catalog(store)
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
        except DefinitionConflict as exc:  # collect them all, then report together
            conflicts.append(f"{item.path}: {exc}")
    if conflicts:
        raise RuntimeError("definition conflicts:\n" + "\n".join(conflicts))
    return latest_versions(loaded)
