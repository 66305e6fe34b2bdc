"""Schemathesis over the OpenAPI spec: generated requests (valid and not) never get a 500.

The real app on a migrated SQLite database with an admin token; launches are recorded rather
than started (see world.py). Examples are limited so this stays in the default `make test`.
Schemathesis' pytest plugin does not load with this pytest, so each operation's strategy is
driven with Hypothesis directly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from baton.api.app import create_app
from tests.baton.api.world import World, build_world

OPERATIONS = [
    (method.upper(), path)
    for path, operations in create_app().openapi()["paths"].items()
    for method in operations
]


@pytest.fixture
def fuzz_world(tmp_path: Path, sqlite_db: str) -> Iterator[World]:
    world = build_world(tmp_path, sqlite_db, launch_per_minute=1000, decide_per_minute=1000)
    world.waiting_run()
    world.failed_run()
    yield world
    world.client.__exit__(None, None, None)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_server_errors(fuzz_world: World, method: str, path: str) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_world.app)
    operation = schema[path][method]
    # JSON, never an event stream: every generated request must end.
    headers = {**fuzz_world.headers("acme", "admin"), "Accept": "application/json"}

    @given(case=operation.as_strategy())
    @settings(
        max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    def no_500(case: schemathesis.Case) -> None:
        response = case.call(headers=headers)
        assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text}"

    no_500()
