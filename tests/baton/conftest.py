"""Fixtures of the core's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.baton.lifecycle_world import World, make_world


@pytest.fixture
def world(db_url: str) -> Iterator[World]:
    """A lifecycle world on SQLite and on Postgres (``tests.baton.lifecycle_world``)."""
    yield from make_world(db_url)
