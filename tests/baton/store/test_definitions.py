"""Definitions: one immutable row per (organization, slug, version)."""

from __future__ import annotations

import pytest
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from baton.db.engine import session_scope
from baton.db.models import OrchestrationDefinition
from baton.store.definitions import DefinitionConflict, DefinitionsRepository
from tests.baton.store.factories import ORG, count, make_definition, spec


def _upsert(
    repo: DefinitionsRepository, *, version: int = 1, checksum: str = "sum-1"
) -> OrchestrationDefinition:
    return repo.upsert(
        organization=ORG,
        slug="hello",
        version=version,
        name="Hello",
        spec=spec(),
        checksum=checksum,
        source_path="library/hello.yaml",
    )


def test_create_get_update_delete(db_url: str) -> None:
    with session_scope(db_url) as s:
        row = make_definition(s, source_path="library/hello.yaml")
        definition_id = row.id
        assert definition_id is not None
        assert row.created_at is not None

    with session_scope(db_url) as s:
        repo = DefinitionsRepository(s)
        found = repo.get(ORG, "hello", 1)
        assert found is not None
        assert found.id == definition_id
        assert found.spec == spec()
        assert (found.name, found.checksum, found.source_path) == (
            "hello v1",
            "sum-hello-1",
            "library/hello.yaml",
        )
        assert repo.get_by_id(definition_id) is found
        assert repo.get(ORG, "hello", 2) is None
        assert repo.get("other-org", "hello", 1) is None
        assert repo.get_by_id(definition_id + 1000) is None
        found.description = "changed"

    with session_scope(db_url) as s:
        row = DefinitionsRepository(s).get_by_id(definition_id)
        assert row is not None
        assert row.description == "changed"
        s.delete(row)

    with session_scope(db_url) as s:
        assert DefinitionsRepository(s).get_by_id(definition_id) is None


def test_slug_is_unique_per_organization_and_version(session: Session) -> None:
    first = make_definition(session)
    make_definition(session, version=2)
    make_definition(session, organization="globex")
    make_definition(session, slug="other")

    with pytest.raises(DefinitionConflict, match="acme/hello version 1 already exists"):
        make_definition(session, checksum="different")

    # The failed insert was rolled back to its savepoint; the session is still usable.
    assert count(session, OrchestrationDefinition) == 4
    assert DefinitionsRepository(session).get(ORG, "hello", 1) is first
    assert first.checksum == "sum-hello-1"


def test_unique_constraint_holds_below_the_repository(session: Session) -> None:
    make_definition(session)
    with pytest.raises(IntegrityError), session.begin_nested():
        session.add(
            OrchestrationDefinition(
                organization=ORG, slug="hello", version=1, name="dup", spec={}, checksum="x"
            )
        )
        session.flush()


def test_upsert_is_idempotent(db_url: str) -> None:
    with session_scope(db_url) as s:
        first_id = _upsert(DefinitionsRepository(s)).id
    with session_scope(db_url) as s:
        again = _upsert(DefinitionsRepository(s))
        assert again.id == first_id
        assert count(s, OrchestrationDefinition) == 1


def test_upsert_with_other_content_names_the_version(session: Session) -> None:
    repo = DefinitionsRepository(session)
    stored = _upsert(repo, version=3)

    with pytest.raises(DefinitionConflict) as excinfo:
        _upsert(repo, version=3, checksum="sum-2")

    message = str(excinfo.value)
    assert "'hello' version 3" in message
    assert "different content" in message
    assert "stored from library/hello.yaml" in message
    assert "increase 'version'" in message
    assert repo.get(ORG, "hello", 3) is stored
    assert stored.checksum == "sum-1"
    # A new version with the new content is fine.
    assert _upsert(repo, version=4, checksum="sum-2").version == 4


def test_latest_version(session: Session) -> None:
    repo = DefinitionsRepository(session)
    assert repo.latest(ORG, "hello") is None
    for version in (1, 3, 2):
        make_definition(session, version=version)
    make_definition(session, organization="globex", version=9)

    latest = repo.latest(ORG, "hello")
    assert latest is not None
    assert latest.version == 3
    assert repo.latest(ORG, "missing") is None


def test_list_by_organization_pages_and_filters(session: Session) -> None:
    for slug, versions in (("beta", (1, 2)), ("alpha", (1, 2, 3)), ("gamma", (1,))):
        for version in versions:
            make_definition(session, slug=slug, version=version)
    make_definition(session, organization="globex", slug="alpha", version=7)
    repo = DefinitionsRepository(session)

    def keys(rows: object) -> list[tuple[str, int]]:
        return [(r.slug, r.version) for r in rows]  # type: ignore[attr-defined]

    everything = [
        ("alpha", 1),
        ("alpha", 2),
        ("alpha", 3),
        ("beta", 1),
        ("beta", 2),
        ("gamma", 1),
    ]
    assert keys(repo.list(ORG)) == everything
    assert keys(repo.list(ORG, limit=2)) == everything[:2]
    assert keys(repo.list(ORG, limit=2, offset=2)) == everything[2:4]
    assert keys(repo.list(ORG, limit=2, offset=4)) == everything[4:]
    assert keys(repo.list(ORG, limit=2, offset=6)) == []

    assert keys(repo.list(ORG, version=1)) == [("alpha", 1), ("beta", 1), ("gamma", 1)]
    assert keys(repo.list(ORG, slug="beta")) == [("beta", 1), ("beta", 2)]
    assert keys(repo.list(ORG, slug="alpha", version=2)) == [("alpha", 2)]

    latest = [("alpha", 3), ("beta", 2), ("gamma", 1)]
    assert keys(repo.list(ORG, latest_only=True)) == latest
    assert keys(repo.list(ORG, latest_only=True, limit=1, offset=1)) == [("beta", 2)]
    assert keys(repo.list(ORG, latest_only=True, slug="alpha")) == [("alpha", 3)]
    # A version filter with latest_only keeps only the slugs whose latest is that version.
    assert keys(repo.list(ORG, latest_only=True, version=1)) == [("gamma", 1)]

    assert keys(repo.list("globex")) == [("alpha", 7)]
    assert keys(repo.list("globex", latest_only=True)) == [("alpha", 7)]
    assert repo.list("nobody") == []


def test_definition_rows_can_be_deleted_when_unused(session: Session) -> None:
    make_definition(session)
    session.execute(delete(OrchestrationDefinition))
    assert count(session, OrchestrationDefinition) == 0


def test_create_rolls_back_with_its_transaction(db_url: str) -> None:
    # create() uses a savepoint; on SQLite it must not commit on its own when it is the
    # first statement of the transaction.
    class Abort(Exception):
        pass

    with pytest.raises(Abort), session_scope(db_url) as s:
        make_definition(s)
        raise Abort

    with session_scope(db_url) as s:
        assert DefinitionsRepository(s).get(ORG, "hello", 1) is None
        assert count(s, OrchestrationDefinition) == 0
