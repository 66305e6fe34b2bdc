"""Builders of minimal rows for the store tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from baton.db.models import OrchestrationDefinition, OrchestrationRun
from baton.store.definitions import DefinitionsRepository
from baton.store.runs import RunsRepository

ORG = "acme"


def spec(slug: str = "hello") -> dict[str, Any]:
    """A minimal orchestration spec."""
    return {
        "name": slug,
        "inputs": {"name": {"type": "string"}},
        "steps": [{"id": "greet", "agent": "echo", "input": "Hello {{ inputs.name }}"}],
    }


def make_definition(
    session: Session,
    *,
    organization: str = ORG,
    slug: str = "hello",
    version: int = 1,
    checksum: str | None = None,
    source_path: str | None = None,
) -> OrchestrationDefinition:
    return DefinitionsRepository(session).create(
        organization=organization,
        slug=slug,
        version=version,
        name=f"{slug} v{version}",
        spec=spec(slug),
        checksum=checksum or f"sum-{slug}-{version}",
        description=f"The {slug} orchestration",
        source_path=source_path,
    )


def make_run(
    session: Session,
    definition: OrchestrationDefinition | None = None,
    *,
    parent: OrchestrationRun | None = None,
    inputs: dict[str, Any] | None = None,
) -> OrchestrationRun:
    if definition is None:
        definition = DefinitionsRepository(session).get(ORG, "hello", 1) or make_definition(session)
    return RunsRepository(session).create(
        definition,
        inputs=inputs if inputs is not None else {"name": "Ada"},
        parent=parent,
        parent_step_id="spawn" if parent else None,
    )


def count(session: Session, model: type[Any], **where: Any) -> int:
    """Rows of ``model`` whose columns equal ``where``."""
    query = select(func.count()).select_from(model)
    for column, value in where.items():
        query = query.where(getattr(model, column) == value)
    return session.scalar(query) or 0
