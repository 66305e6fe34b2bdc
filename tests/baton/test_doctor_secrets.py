"""``baton doctor``: stored webhook secrets that no configured key decrypts are listed with the
fix (the walk of ``baton secrets rotate-key``, read only), in the CLI and in
``baton_waiting_on_system``; never a key or a secret. SQLite and Postgres."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import select, update

from baton.api.metrics import build_registry
from baton.cli.main import main
from baton.db.engine import session_scope
from baton.db.models import WebhookSource, WebhookSubscription, utcnow
from baton.doctor import waiting_on_system
from baton.settings import Settings, get_settings
from baton.webhooks.sources import Sources
from baton.webhooks.subscriptions import Subscriptions

OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()
KIND = "secret_undecryptable"


def keyed(db_url: str, key: str, previous: str | None = None) -> Settings:
    return Settings(
        database_url=SecretStr(db_url),
        secret_key=SecretStr(key),
        secret_key_previous=SecretStr(previous) if previous else None,
    )


def tokens(db_url: str) -> list[object]:
    with session_scope(db_url) as s:
        return [
            *s.execute(
                select(WebhookSource.secret_encrypted, WebhookSource.previous_secret_encrypted)
            ),
            *s.scalars(select(WebhookSubscription.secret_encrypted)),
        ]


@pytest.fixture
def stored_under_old_key(db_url: str) -> Iterator[tuple[str, str]]:
    """Source 'github' (with a previous secret in its grace period), source 'old' (a previous
    secret past it, never read again) and a subscription, all under OLD_KEY."""
    old = keyed(db_url, OLD_KEY)
    sources = Sources(db_url, old)
    sources.add("github", "acme")
    sources.rotate("github", grace=timedelta(hours=1))
    sources.add("old", "acme")
    sources.rotate("old", grace=timedelta(hours=1))
    with session_scope(db_url) as s:
        s.execute(
            update(WebhookSource)
            .where(WebhookSource.name == "old")
            .values(previous_valid_until=utcnow() - timedelta(seconds=1))
        )
    sub_id, _ = Subscriptions(db_url, old).subscribe(
        organization="acme", url="http://127.0.0.1:9/hook", events=["*"]
    )
    yield "github", str(sub_id)


def test_each_undecryptable_secret_is_listed_with_the_fix(
    db_url: str, stored_under_old_key: tuple[str, str]
) -> None:
    _, sub_id = stored_under_old_key
    before = tokens(db_url)
    with session_scope(db_url) as s:
        found = [w for w in waiting_on_system(s, settings=keyed(db_url, NEW_KEY)) if w.kind == KIND]
    assert [w.id for w in found] == [
        "webhook source 'github'",
        "webhook source 'github' (previous secret)",
        "webhook source 'old'",
        f"subscription {sub_id}",
    ]  # 'old's previous secret is past its grace period: never read, not listed
    for w in found:
        assert w.stuck and w.since is not None
        assert "BATON_SECRET_KEY_PREVIOUS" in w.reason and "baton secrets rotate-key" in w.reason
    assert "answered 503" in found[0].reason and "answered 503" in found[1].reason
    assert "its deliveries fail" in found[3].reason
    assert tokens(db_url) == before, "the check writes nothing"
    with session_scope(db_url) as s:
        fixed = waiting_on_system(s, settings=keyed(db_url, NEW_KEY, previous=OLD_KEY))
    assert [w for w in fixed if w.kind == KIND] == []


def test_a_malformed_previous_key_is_one_line_naming_the_variable(
    db_url: str, stored_under_old_key: tuple[str, str]
) -> None:
    bad = keyed(db_url, NEW_KEY, previous=f"{OLD_KEY},not-a-key")
    with session_scope(db_url) as s:
        [w] = [w for w in waiting_on_system(s, settings=bad) if w.kind == KIND]
    assert w.id == "BATON_SECRET_KEY" and "entry 2 of 2" in w.reason
    assert OLD_KEY not in w.reason and "not-a-key" not in w.reason


def test_nothing_stored_reads_no_key(db_url: str, tmp_path: Path) -> None:
    # No BATON_SECRET_KEY and no key file: with nothing stored none is generated.
    settings = Settings(database_url=SecretStr(db_url), data_dir=tmp_path)
    with session_scope(db_url) as s:
        assert [w for w in waiting_on_system(s, settings=settings) if w.kind == KIND] == []
    assert not (tmp_path / "secret.key").exists()


def test_the_cli_and_the_metric_show_them(
    db_url: str,
    stored_under_old_key: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("BATON_DATABASE_URL", db_url)
    monkeypatch.setenv("BATON_SECRET_KEY", NEW_KEY)
    monkeypatch.delenv("BATON_SECRET_KEY_PREVIOUS", raising=False)
    get_settings.cache_clear()
    try:
        assert main(["doctor"]) == 1
        text = capsys.readouterr().out
        assert main(["doctor", "--json"]) == 1
        listed = json.loads(capsys.readouterr().out)["waiting"]
        value = build_registry(db_url).get_sample_value("baton_waiting_on_system", {"kind": KIND})
    finally:
        get_settings.cache_clear()
    assert f"{KIND} webhook source 'github'" in " ".join(text.split())
    assert "baton secrets rotate-key" in text
    assert len([w for w in listed if w["kind"] == KIND]) == 4
    assert value == 4
    assert OLD_KEY not in text and NEW_KEY not in text
