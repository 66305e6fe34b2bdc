"""Webhook sources: secrets shown once, encrypted at rest, rotation with a grace period."""

from __future__ import annotations

import argparse
import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import text, update

from baton.cli.webhooks import duration
from baton.db.engine import session_scope
from baton.db.models import WebhookSource, utcnow
from baton.settings import Settings
from baton.webhooks.crypto import KEY_FILE, SecretKeyError
from baton.webhooks.sources import SourceError, Sources


@pytest.fixture
def sources(db_url: str) -> Sources:
    return Sources(db_url, Settings())


def test_add_returns_a_secret_that_verifies_and_is_never_stored_in_clear(
    sources: Sources, db_url: str
) -> None:
    secret = sources.add("github", "acme")
    found = sources.verification("github")
    assert found is not None
    assert found.organization == "acme" and found.secrets == [secret]
    with session_scope(db_url) as s:
        dump = " ".join(str(v) for v in s.execute(text("SELECT * FROM webhook_sources")).one())
    assert secret not in dump and secret.removeprefix("whsec_") not in dump


def test_the_embedded_key_file_is_created_once_and_private(sources: Sources) -> None:
    sources.add("one", "acme")
    key_file = Settings().data_dir / KEY_FILE
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    before = key_file.read_bytes()
    sources.add("two", "acme")
    assert key_file.read_bytes() == before


def test_a_configured_secret_key_is_used_and_another_key_cannot_read(db_url: str) -> None:
    key = Fernet.generate_key().decode()
    settings = Settings(secret_key=SecretStr(key))
    secret = Sources(db_url, settings).add("stripe", "acme")
    assert not (settings.data_dir / KEY_FILE).exists()
    assert Sources(db_url, settings).verification("stripe").secrets == [secret]  # type: ignore[union-attr]
    other = Settings(secret_key=SecretStr(Fernet.generate_key().decode()))
    with pytest.raises(SecretKeyError, match="cannot be decrypted"):
        Sources(db_url, other).verification("stripe")


def test_a_malformed_secret_key_is_a_clear_error(db_url: str) -> None:
    with pytest.raises(SecretKeyError, match="BATON_SECRET_KEY"):
        Sources(db_url, Settings(secret_key=SecretStr("short"))).add("x", "acme")


@pytest.mark.parametrize("name", ["", "Upper", "has space", "-dash-first", "x" * 101])
def test_bad_names_are_refused_with_what_is_expected(sources: Sources, name: str) -> None:
    with pytest.raises(SourceError, match="expected lower-case letters"):
        sources.add(name, "acme")


def test_a_taken_name_and_an_unknown_source(sources: Sources) -> None:
    sources.add("github", "acme")
    with pytest.raises(SourceError, match="already exists"):
        sources.add("github", "other")
    with pytest.raises(SourceError, match="no such webhook source"):
        sources.rotate("gitlab", timedelta(hours=1))
    assert sources.verification("gitlab") is None


def test_rotation_keeps_the_old_secret_for_the_grace_period_only(
    sources: Sources, db_url: str
) -> None:
    old = sources.add("github", "acme")
    new = sources.rotate("github", timedelta(hours=24))
    assert new != old
    assert sources.verification("github").secrets == [new, old]  # type: ignore[union-attr]
    with session_scope(db_url) as s:
        s.execute(
            update(WebhookSource).values(previous_valid_until=utcnow() - timedelta(seconds=1))
        )
    assert sources.verification("github").secrets == [new]  # type: ignore[union-attr]
    [info] = sources.list()
    assert info.rotated_at is not None


def test_list_by_organization_and_remove(sources: Sources) -> None:
    sources.add("b", "acme")
    sources.add("a", "acme")
    sources.add("c", "other")
    assert [s.name for s in sources.list()] == ["a", "b", "c"]
    assert [s.name for s in sources.list("acme")] == ["a", "b"]
    sources.remove("a")
    assert [s.name for s in sources.list("acme")] == ["b"]


@pytest.mark.parametrize(
    ("text_", "seconds"), [("90", 90), ("90s", 90), ("30m", 1800), ("24h", 86400), ("7d", 604800)]
)
def test_grace_durations(text_: str, seconds: int) -> None:
    assert duration(text_) == timedelta(seconds=seconds)


def test_a_bad_duration_names_the_expected_form() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="like 30m, 24h or 7d"):
        duration("one day")


def test_cli_add_rotate_list(capsys: pytest.CaptureFixture[str], isolated_settings: Path) -> None:
    from baton.cli.main import main

    assert main(["webhooks", "add-source", "github", "--org", "acme"]) == 0
    added = capsys.readouterr()
    [first] = added.out.splitlines()  # alone on stdout: SECRET=$(...) keeps just it
    assert first.startswith("whsec_") and "shown only now" in added.err
    assert main(["webhooks", "rotate-secret", "github", "--grace", "1h"]) == 0
    rotated = capsys.readouterr()
    [second] = rotated.out.splitlines()
    assert second.startswith("whsec_") and second != first
    assert "stays valid for 1:00:00" in rotated.err
    assert main(["webhooks", "list-sources", "--json"]) == 0
    listing = capsys.readouterr().out
    assert '"github"' in listing and first not in listing and second not in listing
    assert main(["webhooks", "add-source", "github", "--org", "acme"]) == 1
    assert "already exists" in capsys.readouterr().err
