"""A subscription whose secret no configured key decrypts: each attempt is recorded with the
reason and the fix, follows the retries to ``failed`` (nothing posted, never silent), the
deliveries' CLI shows it, and a delivery still pending goes out once the old key is back in
BATON_SECRET_KEY_PREVIOUS. Real delivery code against a local HTTP server, SQLite and Postgres.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from baton.cli.main import main
from baton.db.engine import session_scope
from baton.settings import Settings, WebhookSettings, get_settings
from baton.store.events import EventsRepository
from baton.webhooks.delivery import UNDECRYPTABLE, Dispatcher, deliveries
from baton.webhooks.signing import verify
from baton.webhooks.subscriptions import Subscriptions
from tests.fakes.http import FakeServer, Reply

OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()


def keyed(db_url: str, key: str, previous: str | None = None) -> Settings:
    return Settings(
        database_url=SecretStr(db_url),
        secret_key=SecretStr(key),
        secret_key_previous=SecretStr(previous) if previous else None,
        webhooks=WebhookSettings(
            delivery_backoff_seconds=0, delivery_max_attempts=3, delivery_timeout_seconds=1
        ),
    )


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as fake:
        fake.route("POST", "/hook", lambda _r: Reply(204, raw=b""))
        yield fake


def subscribed_under_old_key(db_url: str, server: FakeServer) -> str:
    """A subscription stored under OLD_KEY and one event for it; returns its secret."""
    _, secret = Subscriptions(db_url, keyed(db_url, OLD_KEY)).subscribe(
        organization="acme", url=f"{server.url}/hook", events=["run.completed"]
    )
    with session_scope(db_url) as s:
        EventsRepository(s).append(
            organization="acme", type="run.completed", run_id=None, payload={}
        )
    return secret


def test_an_undecryptable_secret_is_recorded_retried_then_failed(
    db_url: str, server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    secret = subscribed_under_old_key(db_url, server)
    caplog.set_level(logging.DEBUG)
    dispatcher = Dispatcher(db_url, keyed(db_url, NEW_KEY))  # the old key was dropped
    assert dispatcher.enqueue() == 1
    attempts = [a for _ in range(5) for a in dispatcher.send_due()]
    assert [a.status for a in attempts] == ["pending", "pending", "failed"]  # max_attempts = 3
    assert {a.error for a in attempts} == {UNDECRYPTABLE}
    [row] = deliveries(db_url)
    assert (row.status, row.attempts, row.last_status_code) == ("failed", 3, None)
    assert row.last_error == UNDECRYPTABLE
    assert "docs/production.md#rotating-baton_secret_key" in UNDECRYPTABLE
    assert server.calls("POST", "/hook") == [], "nothing is posted without the secret"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("BATON_SECRET_KEY_PREVIOUS" in w and "rotate-key" in w for w in warnings)
    logged = caplog.text
    assert secret not in logged and OLD_KEY not in logged and NEW_KEY not in logged


def test_the_deliveries_cli_shows_the_reason(
    db_url: str,
    server: FakeServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    subscribed_under_old_key(db_url, server)
    dispatcher = Dispatcher(db_url, keyed(db_url, NEW_KEY))
    dispatcher.enqueue()
    dispatcher.send_due()
    monkeypatch.setenv("BATON_DATABASE_URL", db_url)
    monkeypatch.setenv("BATON_SECRET_KEY", NEW_KEY)
    get_settings.cache_clear()
    try:
        assert main(["webhooks", "deliveries"]) == 0
    finally:
        get_settings.cache_clear()
    [row] = json.loads(capsys.readouterr().out)
    assert (row["status"], row["attempts"], row["last_error"]) == ("pending", 1, UNDECRYPTABLE)


def test_a_pending_delivery_goes_out_once_the_old_key_is_previous(
    db_url: str, server: FakeServer
) -> None:
    secret = subscribed_under_old_key(db_url, server)
    broken = Dispatcher(db_url, keyed(db_url, NEW_KEY))
    broken.enqueue()
    assert [a.status for a in broken.send_due()] == ["pending"]
    fixed = Dispatcher(db_url, keyed(db_url, NEW_KEY, previous=OLD_KEY))
    [attempt] = fixed.send_due()
    assert attempt.status == "delivered" and attempt.error is None
    [row] = deliveries(db_url)
    assert (row.attempts, row.last_error) == (2, None)
    request = server.calls("POST", "/hook")[-1]
    verify([secret], request.headers, request.body)
