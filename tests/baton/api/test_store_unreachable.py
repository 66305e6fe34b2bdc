"""A database that is down answers 503 with Retry-After, not 500 (the fault test
tests/faults/test_postgres_outage.py shows it on a real outage)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from baton.api.errors import install_error_handlers
from tests.e2e.deploy import free_port


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    # Nothing listens on this port: connecting fails as against a stopped Postgres.
    url = f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/postgres"

    @app.get("/down")
    def down() -> None:
        with create_engine(url).connect() as conn:
            conn.execute(text("SELECT 1"))

    @app.get("/broken")
    def broken() -> None:
        raise IntegrityError("INSERT", {}, Exception("duplicate key"))

    return app


def test_an_unreachable_database_answers_503_with_retry_after() -> None:
    answer = TestClient(_app(), raise_server_exceptions=False).get("/down")
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "unavailable"
    assert answer.headers["Retry-After"] == "5"
    assert "postgres@" not in answer.text  # the URL stays in the log


@pytest.mark.parametrize("path", ["/broken"])
def test_other_database_errors_stay_500(path: str) -> None:
    answer = TestClient(_app(), raise_server_exceptions=False).get(path)
    assert answer.status_code == 500
