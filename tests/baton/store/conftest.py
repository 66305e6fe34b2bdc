"""Fixtures of the store tests; every test runs on SQLite and on Postgres (``db_url``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session

from baton.db.engine import session_scope


@pytest.fixture
def session(db_url: str) -> Iterator[Session]:
    """A session on a migrated database, committed at the end of the test."""
    with session_scope(db_url) as s:
        yield s
