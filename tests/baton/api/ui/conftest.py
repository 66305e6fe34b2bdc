"""Fixtures of the approvals page tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dagster import instance_for_test

from tests.baton.api.ui.support import Deployment, build_deployment


@pytest.fixture
def deployment(sqlite_db: str) -> Iterator[Deployment]:
    """The page's world on a real Dagster instance (SQLite, like the embedded default)."""
    with instance_for_test() as instance:
        instance.baton_db_url = sqlite_db  # type: ignore[attr-defined]
        yield build_deployment(instance)
