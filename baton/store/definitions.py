"""Orchestration definitions: one row per (organization, slug, version)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from baton.db.models import OrchestrationDefinition, OrchestrationRun
from baton.state import TERMINAL_RUN_STATUSES


class DefinitionConflict(Exception):
    """The same slug and version already stored with different content."""


class DefinitionsRepository:
    """Create and find definitions; a version's content never changes once stored."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, organization: str, slug: str, version: int) -> OrchestrationDefinition | None:
        return self.session.scalar(
            select(OrchestrationDefinition).where(
                OrchestrationDefinition.organization == organization,
                OrchestrationDefinition.slug == slug,
                OrchestrationDefinition.version == version,
            )
        )

    def get_by_id(self, definition_id: int) -> OrchestrationDefinition | None:
        return self.session.get(OrchestrationDefinition, definition_id)

    def latest(self, organization: str, slug: str) -> OrchestrationDefinition | None:
        return self.session.scalar(
            select(OrchestrationDefinition)
            .where(
                OrchestrationDefinition.organization == organization,
                OrchestrationDefinition.slug == slug,
            )
            .order_by(OrchestrationDefinition.version.desc())
            .limit(1)
        )

    def with_unfinished_runs(self) -> Sequence[OrchestrationDefinition]:
        """Every version that a run not yet completed, failed or aborted started on."""
        unfinished = select(OrchestrationRun.definition_id).where(
            OrchestrationRun.status.not_in(TERMINAL_RUN_STATUSES),
            OrchestrationRun.deleted_at.is_(None),
        )
        return self.session.scalars(
            select(OrchestrationDefinition)
            .where(OrchestrationDefinition.id.in_(unfinished))
            .order_by(OrchestrationDefinition.slug, OrchestrationDefinition.version)
        ).all()

    def slugs(self, organization: str) -> list[str]:
        """Every slug stored for an organization (for "did you mean")."""
        return list(
            self.session.scalars(
                select(OrchestrationDefinition.slug)
                .where(OrchestrationDefinition.organization == organization)
                .distinct()
            )
        )

    def list(
        self,
        organization: str,
        *,
        slug: str | None = None,
        version: int | None = None,
        latest_only: bool = False,
        limit: int = 50,
        offset: int = 0,
    ) -> Sequence[OrchestrationDefinition]:
        """Definitions of an organization by slug then version, a page at a time."""
        query = select(OrchestrationDefinition).where(
            OrchestrationDefinition.organization == organization
        )
        if slug is not None:
            query = query.where(OrchestrationDefinition.slug == slug)
        if version is not None:
            query = query.where(OrchestrationDefinition.version == version)
        if latest_only:
            newest = (
                select(
                    OrchestrationDefinition.slug,
                    func.max(OrchestrationDefinition.version).label("version"),
                )
                .where(OrchestrationDefinition.organization == organization)
                .group_by(OrchestrationDefinition.slug)
                .subquery()
            )
            query = query.join(
                newest,
                (OrchestrationDefinition.slug == newest.c.slug)
                & (OrchestrationDefinition.version == newest.c.version),
            )
        query = (
            query.order_by(OrchestrationDefinition.slug, OrchestrationDefinition.version)
            .limit(limit)
            .offset(offset)
        )
        return self.session.scalars(query).all()

    def create(
        self,
        *,
        organization: str,
        slug: str,
        version: int,
        name: str,
        spec: dict[str, Any],
        checksum: str,
        description: str | None = None,
        source_path: str | None = None,
    ) -> OrchestrationDefinition:
        """Store a new version.

        Raises:
            DefinitionConflict: that organization, slug and version exist already.
        """
        row = OrchestrationDefinition(
            organization=organization,
            slug=slug,
            version=version,
            name=name,
            spec=spec,
            checksum=checksum,
            description=description,
            source_path=source_path,
        )
        try:
            with self.session.begin_nested():
                self.session.add(row)
                self.session.flush()
        except IntegrityError as exc:
            raise DefinitionConflict(
                f"{organization}/{slug} version {version} already exists"
            ) from exc
        return row

    def upsert(
        self,
        *,
        organization: str,
        slug: str,
        version: int,
        name: str,
        spec: dict[str, Any],
        checksum: str,
        description: str | None = None,
        source_path: str | None = None,
    ) -> OrchestrationDefinition:
        """The stored row for this version, created if new.

        Raises:
            DefinitionConflict: the version is stored with different content; bump
                ``version`` instead of changing a stored one.
        """
        existing = self.get(organization, slug, version)
        if existing is None:
            try:
                return self.create(
                    organization=organization,
                    slug=slug,
                    version=version,
                    name=name,
                    spec=spec,
                    checksum=checksum,
                    description=description,
                    source_path=source_path,
                )
            except DefinitionConflict:  # another process stored it first
                existing = self.get(organization, slug, version)
                assert existing is not None
        if existing.checksum != checksum:
            where = f" (stored from {existing.source_path})" if existing.source_path else ""
            raise DefinitionConflict(
                f"{source_path or slug}: '{slug}' version {version} is already stored with "
                f"different content{where}; increase 'version' when you change a definition"
            )
        return existing
