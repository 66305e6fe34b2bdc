"""A real local HTTP server for the agents' contract tests, shared within each module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.http import FakeServer


@pytest.fixture(scope="module")
def shared_server() -> Iterator[FakeServer]:
    with FakeServer() as fake:  # one per module: stopping a server takes half a second
        yield fake


@pytest.fixture
def server(shared_server: FakeServer) -> FakeServer:
    """The module's server with no routes and no recorded requests."""
    shared_server.routes.clear()
    shared_server.requests.clear()
    return shared_server
