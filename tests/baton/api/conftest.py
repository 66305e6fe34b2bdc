"""Fixtures of the API tests: a started app on a migrated database (see world.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.baton.api.world import World, build_world


@pytest.fixture
def world(tmp_path: Path, sqlite_db: str) -> Iterator[World]:
    """A fresh deployment on SQLite."""
    w = build_world(tmp_path, sqlite_db)
    yield w
    w.client.__exit__(None, None, None)


@pytest.fixture(scope="module")
def shared_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One deployment for a whole module (the authorization matrix makes hundreds of calls);
    cases that change things act on targets they create themselves."""
    from baton.db import migrate

    tmp = tmp_path_factory.mktemp("api")
    url = f"sqlite:///{tmp / 'baton.db'}"
    migrate.upgrade(url)
    w = build_world(tmp, url)
    yield w
    w.client.__exit__(None, None, None)
