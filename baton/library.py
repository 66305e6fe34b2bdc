"""The definition library: syncing the folders into Baton's tables, and reading them back.

A *sync* parses every file, stores every valid version in ``orchestration_definitions`` and
records what each file gave (its job, or its errors) in ``library_files``. It runs where the
library is deployed from (``baton up``, ``baton library sync``, the API's start and the code
server's load of the location), never in a run worker: a run worker reads its one job's spec
back with ``stored_job_spec`` instead of parsing the library.

Invalid files do not stop a sync: they are recorded with their errors and the valid files go
on. ``BATON_STRICT_LIBRARY=true`` restores the all-or-nothing behaviour (``SpecErrors``).

Uses only the language and the agent catalog, so the CLI can load it without Dagster.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from agent_resources.catalog import agent_catalog
from agent_resources.contracts import agent_input_checks
from baton.db import migrate
from baton.db.models import LibraryFile, OrchestrationDefinition, utcnow
from baton.settings import Settings
from baton.store.definitions import DefinitionConflict, DefinitionsRepository
from baton.store.service import RunStore
from orchestration_defs.language.errors import SpecError, SpecErrors
from orchestration_defs.language.library import (
    LoadedDefinition,
    definition_files,
    latest_versions,
    load_library,
)
from orchestration_defs.language.models import OrchestrationSpec, pinned_job_name

log = logging.getLogger(__name__)

_PINNED = re.compile(r"^(?P<base>.+)__v(?P<version>\d+)$")


@dataclass(frozen=True)
class FileProblem:
    """An invalid library file and everything wrong with it."""

    path: str
    errors: list[dict[str, Any]]
    synced_at: datetime | None = None

    @property
    def lines(self) -> list[str]:
        """One readable line per error (``file:line:col: field: message``)."""
        return [str(e.get("text") or e.get("message")) for e in self.errors]

    def as_json(self) -> dict[str, Any]:
        synced = self.synced_at.isoformat() if self.synced_at else None
        return {"path": self.path, "errors": self.errors, "synced_at": synced}


@dataclass(frozen=True)
class LibrarySync:
    """What one sync found: the newest valid version of each slug, and the invalid files."""

    newest: list[LoadedDefinition]
    problems: list[FileProblem] = field(default_factory=list)


def _load(settings: Settings) -> tuple[list[LoadedDefinition], list[SpecError]]:
    return load_library(
        settings.library_dirs,
        known_agents=agent_input_checks(),
        max_depth=settings.children.max_depth,
    )


def prepare_database(settings: Settings) -> None:
    """Bring Baton's tables to the newest revision if allowed, else insist they are."""
    url = settings.db_url
    if migrate.is_current(url):
        return
    if not settings.auto_migrate:
        raise migrate.SchemaNotCurrent(
            "Baton's tables are not at the newest revision; run `baton db upgrade`"
        )
    migrate.upgrade(url)


def load_checked(settings: Settings) -> list[LoadedDefinition]:
    """Every valid definition in the library folders.

    Raises:
        SpecErrors: any file is invalid (all problems, with file and line).
    """
    loaded, errors = _load(settings)
    if errors:
        raise SpecErrors(errors)
    return loaded


def library_slugs(settings: Settings) -> list[str]:
    """The slugs of the valid files in the library folders."""
    loaded, errors = _load(settings)
    return sorted({item.spec.slug for item in _valid(loaded, errors)})


def find_latest(settings: Settings, slug: str) -> LoadedDefinition | None:
    """The newest valid version of ``slug`` in the library, or None.

    Raises:
        SpecErrors: strict mode and any file is invalid, or ``slug`` is not among the valid
            files while some files are invalid (its own file may be one of them).
    """
    loaded, errors = _load(settings)
    if errors and settings.strict_library:
        raise SpecErrors(errors)
    for item in latest_versions(_valid(loaded, errors)):
        if item.spec.slug == slug:
            return item
    if errors:
        raise SpecErrors(errors)
    return None


def seed_catalog(store: RunStore) -> int:
    """Store every agent catalog entry (idempotent); returns how many rows changed."""
    return store.seed_agents([e.model_dump(mode="json") for e in agent_catalog().values()])


def load_and_register(settings: Settings) -> list[LoadedDefinition]:
    """The newest version of each valid library definition, after a sync (see ``sync_library``).

    Raises:
        SpecErrors: strict mode, and a file is invalid.
        RuntimeError: strict mode, and a stored version was changed in place.
    """
    return sync_library(settings).newest


def sync_library(settings: Settings) -> LibrarySync:
    """Parse the library, store every valid version, record each file's job or errors.

    Raises:
        SpecErrors: ``strict_library`` and a file is invalid.
        RuntimeError: ``strict_library`` and a stored version was changed in place.
    """
    loaded, errors = _load(settings)
    if errors and settings.strict_library:
        raise SpecErrors(errors)
    store = RunStore(settings.db_url)
    seed_catalog(store)
    valid = _valid(loaded, errors)
    ids, conflicts = _register(store, valid)
    if conflicts and settings.strict_library:
        raise RuntimeError("definition conflicts:\n" + "\n".join(conflicts.values()))
    for path, message in conflicts.items():
        errors.append(SpecError(path, 1, 1, "version", message))
    valid = [item for item in valid if str(item.path) not in conflicts]
    newest = latest_versions(valid)
    problems = _problems(errors)
    _record_files(store, settings, valid, newest, ids, problems)
    for problem in problems:
        log.warning(
            "library file %s is invalid and was left out:\n  %s",
            problem.path,
            "\n  ".join(problem.lines),
        )
    return LibrarySync(newest, problems)


def _valid(
    loaded: Sequence[LoadedDefinition], errors: Sequence[SpecError]
) -> list[LoadedDefinition]:
    """The loaded definitions whose files have no error (a clash marks the later file)."""
    bad = {e.source for e in errors}
    return [item for item in loaded if str(item.path) not in bad]


def _register(
    store: RunStore, items: Sequence[LoadedDefinition]
) -> tuple[dict[str, int], dict[str, str]]:
    """Store new versions; ids by file path, and the files whose version changed in place.

    One query reads every stored checksum, so a sync of an unchanged library of hundreds of
    files costs one round trip, not one per file.
    """
    ids: dict[str, int] = {}
    conflicts: dict[str, str] = {}
    d = OrchestrationDefinition
    with store.session() as s:
        slugs = {item.spec.slug for item in items}
        stored = {
            (row.organization, row.slug, row.version): row
            for row in s.execute(
                select(d.id, d.organization, d.slug, d.version, d.checksum, d.source_path).where(
                    d.slug.in_(slugs)
                )
            )
        }
        repo = DefinitionsRepository(s)
        for item in items:
            spec = item.spec
            row = stored.get((spec.organization, spec.slug, spec.version))
            try:
                if row is None:
                    ids[str(item.path)] = _store(repo, item)
                elif row.checksum != item.checksum:
                    raise DefinitionConflict(
                        f"'{spec.slug}' version {spec.version} is already stored with different "
                        f"content (stored from {row.source_path}); increase 'version' when you "
                        "change a definition"
                    )
                else:
                    ids[str(item.path)] = row.id
            except DefinitionConflict as exc:  # collect them all, then report together
                conflicts[str(item.path)] = f"{item.path}: {exc}"
    return ids, conflicts


def _store(repo: DefinitionsRepository, item: LoadedDefinition) -> int:
    spec = item.spec
    row = repo.upsert(
        organization=spec.organization,
        slug=spec.slug,
        version=spec.version,
        name=spec.name,
        spec=spec.model_dump(mode="json", by_alias=True),
        checksum=item.checksum,
        description=spec.description,
        source_path=str(item.path),
    )
    return row.id


def _problems(errors: Iterable[SpecError]) -> list[FileProblem]:
    by_file: dict[str, list[dict[str, Any]]] = {}
    for e in errors:
        by_file.setdefault(e.source, []).append(
            {
                "line": e.line,
                "column": e.column,
                "field": e.field,
                "message": e.message,
                "text": str(e),
            }
        )
    return [FileProblem(path, items) for path, items in sorted(by_file.items())]


def _record_files(
    store: RunStore,
    settings: Settings,
    valid: Sequence[LoadedDefinition],
    newest: Sequence[LoadedDefinition],
    ids: dict[str, int],
    problems: Sequence[FileProblem],
) -> None:
    """Replace ``library_files`` with this sync's view: every file, its job or its errors."""
    jobs = {str(item.path): item.spec.job_name for item in newest}
    errors = {p.path: p.errors for p in problems}
    files, _ = definition_files(settings.library_dirs)
    paths = {str(f) for f in files} | {str(i.path) for i in valid} | set(errors)
    now = utcnow()
    rows = [
        {
            "path": path,
            "definition_id": ids.get(path),
            "job_name": jobs.get(path),
            "errors": errors.get(path, []),
            "synced_at": now,
        }
        for path in sorted(paths)
    ]
    # Two code servers (webserver's, daemon's) may sync at once: the loser of the unique path
    # retries on top of the winner's rows, which hold the same content.
    for attempt in range(3):
        try:
            with store.session() as s:
                _replace_files(s, rows)
            return
        except IntegrityError:
            if attempt == 2:
                raise


def _replace_files(s: Session, rows: Sequence[dict[str, Any]]) -> None:
    current = {row["path"] for row in rows}
    existing = {f.path: f for f in s.scalars(select(LibraryFile))}
    for path, stale in existing.items():
        if path not in current:
            s.delete(stale)
    for values in rows:
        row = existing.get(values["path"])
        if row is None:
            s.add(LibraryFile(**values))
            continue
        for key, value in values.items():
            setattr(row, key, value)


# reading the library back -------------------------------------------------------------------


def library_problems(store: RunStore) -> list[FileProblem]:
    """The invalid files as the last sync found them."""
    with store.session() as s:
        rows = s.scalars(select(LibraryFile).order_by(LibraryFile.path)).all()
        return [FileProblem(r.path, list(r.errors), r.synced_at) for r in rows if r.errors]


def stored_job_names(store: RunStore) -> list[str]:
    """The jobs of the last sync plus the pinned jobs of older versions with unfinished runs."""
    d = OrchestrationDefinition
    with store.session() as s:
        jobs = s.execute(
            select(LibraryFile.job_name, d.slug, d.version)
            .join(d, LibraryFile.definition_id == d.id)
            .where(LibraryFile.job_name.is_not(None))
        ).all()
    names = {row.job_name for row in jobs}
    current = {(row.slug, row.version) for row in jobs}
    for slug, version, _ in store.unfinished_versions():
        if (slug, version) not in current:
            names.add(pinned_job_name(slug, version))
    return sorted(names)


def stored_job_spec(store: RunStore, job_name: str) -> OrchestrationSpec | None:
    """The spec a job is built from, read from the tables without parsing the library.

    ``<slug>__v<N>`` is that stored version, pinned; a plain name is the version the last sync
    gave the job, else (a job the last sync did not list) the slug's newest stored version.
    """
    d = OrchestrationDefinition
    pinned = _PINNED.match(job_name)
    with store.session() as s:
        if pinned:
            query = select(d.spec).where(
                func.replace(d.slug, "-", "_") == pinned["base"],
                d.version == int(pinned["version"]),
            )
            raw = s.scalar(query.limit(1))
            return OrchestrationSpec.model_validate(raw).pinned() if raw is not None else None
        raw = s.scalar(
            select(d.spec)
            .join(LibraryFile, LibraryFile.definition_id == d.id)
            .where(LibraryFile.job_name == job_name)
            .limit(1)
        )
        if raw is None:
            raw = s.scalar(
                select(d.spec)
                .where(func.replace(d.slug, "-", "_") == job_name)
                .order_by(d.version.desc())
                .limit(1)
            )
    return OrchestrationSpec.model_validate(raw) if raw is not None else None
