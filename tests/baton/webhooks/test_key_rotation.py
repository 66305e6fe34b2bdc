"""Rotating BATON_SECRET_KEY: previous keys still decrypt, rotate_key re-encrypts every stored
secret under the current key in one transaction, and a secret no key decrypts changes nothing.
On SQLite and on Postgres; the keys never appear in what is stored, raised or logged."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import select, text

from baton.db.engine import session_scope
from baton.db.models import WebhookSource, WebhookSubscription
from baton.settings import Settings, WebhookSettings
from baton.store.events import EventsRepository
from baton.webhooks import crypto
from baton.webhooks.crypto import SecretKeyError
from baton.webhooks.delivery import Dispatcher
from baton.webhooks.key_rotation import KeyRotationError, rotate_key
from baton.webhooks.signing import verify
from baton.webhooks.sources import Sources
from baton.webhooks.subscriptions import Subscriptions
from tests.fakes.http import FakeServer, Reply

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()
KEY_C = Fernet.generate_key().decode()


def keyed(db_url: str, current: str, previous: str | None = None) -> Settings:
    return Settings(
        database_url=SecretStr(db_url),
        secret_key=SecretStr(current),
        secret_key_previous=SecretStr(previous) if previous is not None else None,
        webhooks=WebhookSettings(delivery_backoff_seconds=0, delivery_timeout_seconds=1),
    )


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as fake:
        fake.route("POST", "/hook", lambda _r: Reply(204, raw=b""))
        yield fake


def stored(db_url: str) -> dict[str, Any]:
    """Every stored ciphertext, by row."""
    with session_scope(db_url) as s:
        found: dict[str, Any] = {}
        for src in s.scalars(select(WebhookSource)):
            found[src.name] = (src.secret_encrypted, src.previous_secret_encrypted)
        for sub in s.scalars(select(WebhookSubscription)):
            found[str(sub.id)] = sub.secret_encrypted
        return found


def dump(db_url: str) -> str:
    with session_scope(db_url) as s:
        rows = [
            *s.execute(text("SELECT * FROM webhook_sources")),
            *s.execute(text("SELECT * FROM webhook_subscriptions")),
        ]
    return " ".join(str(v) for row in rows for v in row)


def delivered_with(settings: Settings, server: FakeServer, secret: str) -> None:
    """An event delivered to the subscription, signed with ``secret``."""
    with session_scope(settings.db_url) as s:
        EventsRepository(s).append(
            organization="acme", type="run.completed", run_id=None, payload={}
        )
    dispatcher = Dispatcher(settings.db_url, settings)
    assert dispatcher.enqueue() == 1
    [attempt] = dispatcher.send_due()
    assert attempt.status == "delivered", attempt
    request = server.calls("POST", "/hook")[-1]
    verify([secret], request.headers, request.body)


def test_previous_key_decrypts_then_rotation_moves_everything_to_the_current_key(
    db_url: str, server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    under_a = keyed(db_url, KEY_A)
    sources = Sources(db_url, under_a)
    first = sources.add("github", "acme")
    second = sources.rotate("github", timedelta(hours=1))  # previous secret in its grace period
    sources.add("stripe", "acme")
    sources.rotate("stripe", timedelta(0))  # previous secret past its grace period
    _, sub_secret = Subscriptions(db_url, under_a).subscribe(
        organization="acme", url=f"{server.url}/hook", events=["run.completed"]
    )

    # The new key is current, the old one previous: everything still decrypts and signs.
    both = keyed(db_url, KEY_B, f"{KEY_A},")
    found = Sources(db_url, both).verification("github")
    assert found is not None and found.secrets == [second, first]
    delivered_with(both, server, sub_secret)
    # ... and what is written now is under the current key only.
    third = Sources(db_url, both).add("gitlab", "acme")
    assert crypto.decrypt(keyed(db_url, KEY_B), stored(db_url)["gitlab"][0]) == third

    before = stored(db_url)
    dry = rotate_key(db_url, both, dry_run=True)
    assert stored(db_url) == before  # a dry run changes nothing
    assert (dry.reencrypted, dry.current, dry.dropped) == (4, 1, 1)

    report = rotate_key(db_url, both)
    assert (report.reencrypted, report.current, report.dropped) == (4, 1, 1)
    assert {k: (t.reencrypted, t.current, t.dropped) for k, t in report.kinds.items()} == {
        "source secrets": (2, 1, 0),
        "previous source secrets": (1, 0, 1),
        "subscription secrets": (1, 0, 0),
    }
    assert stored(db_url)["stripe"][1] is None
    again = rotate_key(db_url, both)  # idempotent
    assert (again.reencrypted, again.current, again.dropped) == (0, 5, 0)

    # The previous key removed: everything decrypts with the new key alone, A reads nothing.
    only_b = keyed(db_url, KEY_B)
    found = Sources(db_url, only_b).verification("github")
    assert found is not None and found.secrets == [second, first]
    delivered_with(only_b, server, sub_secret)
    with pytest.raises(SecretKeyError, match="cannot be decrypted"):
        Sources(db_url, under_a).verification("github")

    written = dump(db_url) + caplog.text
    for key in (KEY_A, KEY_B):
        assert key not in written
    for secret in (first, second, third, sub_secret):
        assert secret not in written


def test_a_secret_no_key_decrypts_names_its_row_and_changes_nothing(db_url: str) -> None:
    Sources(db_url, keyed(db_url, KEY_A)).add("github", "acme")
    sub_id, _ = Subscriptions(db_url, keyed(db_url, KEY_C)).subscribe(
        organization="acme", url="http://127.0.0.1:9/hook", events=["run.completed"]
    )
    both = keyed(db_url, KEY_B, KEY_A)
    before = stored(db_url)
    with pytest.raises(KeyRotationError) as raised:
        rotate_key(db_url, both)
    message = str(raised.value)
    assert f"subscription {sub_id}" in message and "nothing was changed" in message
    assert "\n" not in message
    assert all(key not in message for key in (KEY_A, KEY_B, KEY_C))
    assert stored(db_url) == before  # the source was not re-encrypted either


def test_a_source_whose_previous_secret_no_key_decrypts_is_named(db_url: str) -> None:
    sources = Sources(db_url, keyed(db_url, KEY_C))
    sources.add("github", "acme")
    Sources(db_url, keyed(db_url, KEY_A)).rotate("github", timedelta(hours=1))
    with pytest.raises(KeyRotationError, match=r"webhook source 'github' \(previous secret\)"):
        rotate_key(db_url, keyed(db_url, KEY_B, KEY_A))


def test_a_malformed_previous_key_names_the_variable_not_the_value(db_url: str) -> None:
    bad = "not-a-key-at-all"
    settings = keyed(db_url, KEY_B, f"{KEY_A},{bad}")
    with pytest.raises(SecretKeyError) as raised:
        rotate_key(db_url, settings)
    message = str(raised.value)
    assert "BATON_SECRET_KEY_PREVIOUS: entry 2 of 2" in message
    assert bad not in message and KEY_A not in message
    assert raised.value.__cause__ is None and raised.value.__suppress_context__  # no value
