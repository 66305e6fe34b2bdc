"""`/readyz` answers 503 within its deadline when a store is down: a probe that hangs is cut
off, not waited for, and never started twice at once."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from baton.api.readiness import DeadlineProbe
from baton.store.service import RunStore
from tests.baton.api.tcp_proxy import CuttableProxy
from tests.baton.api.world import World, build_world
from tests.e2e.deploy import free_port


def test_a_hanging_check_is_cut_off_at_the_deadline_and_not_started_again() -> None:
    release = threading.Event()
    calls: list[int] = []

    def hangs() -> None:
        calls.append(1)
        release.wait(30)

    probe = DeadlineProbe("store", hangs, deadline=0.2, first_deadline=0.2)
    assert probe() == "timeout (no answer in 0.2 s)"
    assert probe() == "timeout (no answer in 0.2 s)"
    assert len(calls) == 1  # the second request waited on the same check
    release.set()
    assert probe() == "ok"  # the hung check, released, answers the request waiting on it
    assert len(calls) == 1
    assert probe() == "ok"  # that check ended: this request starts a fresh one
    assert len(calls) == 2


def test_a_failing_check_names_only_the_error_type_and_logs_no_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def fails() -> None:
        raise ConnectionError("postgresql://baton:s3cret-pw@db/baton refused")

    with caplog.at_level(logging.WARNING, logger="baton.api.readiness"):
        assert DeadlineProbe("db", fails, 1, 1)() == "unreachable (ConnectionError)"
    assert "postgresql://baton:***@db/baton refused" in caplog.text
    assert "s3cret-pw" not in caplog.text


def test_the_first_check_gets_the_longer_deadline_once() -> None:
    gate = threading.Event()
    probe = DeadlineProbe("slow", lambda: gate.wait(30), deadline=0.1, first_deadline=30)
    threading.Timer(0.3, gate.set).start()
    assert probe() == "ok"  # waited past the short deadline: it was the first
    gate.clear()
    assert probe() == "timeout (no answer in 0.1 s)"
    gate.set()


def test_readyz_answers_503_when_baton_s_database_is_unreachable(
    tmp_path: Path, sqlite_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    world = build_world(tmp_path, sqlite_db)
    try:
        assert world.client.get("/readyz").status_code == 200
        # Nothing listens on this port: the connection is refused.
        closed = f"postgresql+psycopg2://baton:s3cret-pw@127.0.0.1:{free_port()}/baton"
        world.app.state.store = RunStore(closed)
        response = world.client.get("/readyz")
        assert response.status_code == 503
        message = response.json()["error"]["message"]
        assert message == "not ready: database: unreachable (OperationalError)"
        assert "s3cret-pw" not in response.text
        assert "readiness check database failed" in caplog.text
        assert "s3cret-pw" not in caplog.text
    finally:
        world.client.__exit__(None, None, None)


@pytest.fixture
def proxied_world(tmp_path: Path, pg_db: str) -> Iterator[tuple[World, CuttableProxy]]:
    """The API with Baton's tables and Dagster's storage both behind one cuttable proxy."""
    real = make_url(pg_db)
    proxy = CuttableProxy((real.host or "127.0.0.1", real.port or 5432))
    via = real.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    home = tmp_path / "dagster"
    home.mkdir()
    dagster_url = via.replace("+psycopg2", "")
    (home / "dagster.yaml").write_text(
        f"telemetry: {{enabled: false}}\nstorage:\n  postgres:\n    postgres_url: {dagster_url}\n"
    )
    world = build_world(tmp_path, via)
    yield world, proxy
    proxy.restore()
    world.client.__exit__(None, None, None)
    proxy.close()


@pytest.mark.postgres
def test_readyz_answers_503_while_postgres_is_cut_off_and_200_once_it_is_back(
    proxied_world: tuple[World, CuttableProxy],
) -> None:
    world, proxy = proxied_world
    assert world.client.get("/readyz").status_code == 200, world.client.get("/readyz").text
    proxy.cut()
    for _ in range(2):  # the second request finds the hung Dagster check and does not pile up
        response = world.client.get("/readyz")
        assert response.status_code == 503
        message = response.json()["error"]["message"]
        # Baton's database: the probe's own connect timeout; Dagster's storage: the deadline.
        assert "database: unreachable (OperationalError)" in message, message
        assert "dagster: timeout (no answer in 1.5 s)" in message, message
    proxy.restore()
    # The check that hung now fails on its dropped connection; a later one finds Postgres.
    states: list[int] = []
    while len(states) < 50 and states[-1:] != [200]:
        states.append(world.client.get("/readyz").status_code)
        time.sleep(0.1)
    assert states[-1] == 200, states
