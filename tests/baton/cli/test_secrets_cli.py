"""``baton secrets generate-key|rotate-key``: counts printed, a dry run, one-line errors, and
the keys never in what the command prints."""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet

from baton.cli.main import main
from baton.settings import get_settings


def use(monkeypatch: pytest.MonkeyPatch, db_url: str, current: str, previous: str = "") -> None:
    monkeypatch.setenv("BATON_DATABASE_URL", db_url)
    monkeypatch.setenv("BATON_SECRET_KEY", current)
    if previous:
        monkeypatch.setenv("BATON_SECRET_KEY_PREVIOUS", previous)
    else:
        monkeypatch.delenv("BATON_SECRET_KEY_PREVIOUS", raising=False)
    get_settings.cache_clear()


def test_generate_key_prints_a_fernet_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["secrets", "generate-key"]) == 0
    key = capsys.readouterr().out.strip()
    Fernet(key.encode())  # raises if it is not one


def test_rotate_key_dry_run_then_for_real(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    use(monkeypatch, db_url, old)
    assert main(["webhooks", "add-source", "github", "--org", "acme"]) == 0
    args = ["webhooks", "subscribe", "--org", "acme", "--url", "http://127.0.0.1:9/hook"]
    assert main([*args, "--events", "run.completed"]) == 0
    capsys.readouterr()

    use(monkeypatch, db_url, new, old)
    assert main(["secrets", "rotate-key", "--dry-run"]) == 0
    dry = capsys.readouterr()
    assert "would re-encrypt 2 secrets under the current key, 0 already current" in dry.out
    assert "dry run: nothing changed" in dry.out
    assert "source secrets: 1 to re-encrypt, 0 already current" in dry.out
    assert main(["secrets", "rotate-key"]) == 0
    done = capsys.readouterr()
    assert "source secrets: 1 re-encrypted, 0 already current" in done.out
    assert "subscription secrets: 1 re-encrypted, 0 already current" in done.out
    assert "re-encrypted 2 secrets under the current key, 0 already current" in done.out
    assert main(["secrets", "rotate-key", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["reencrypted"], report["already_current"]) == (0, 2)

    use(monkeypatch, db_url, new)  # the previous key removed: the secrets still read
    assert main(["webhooks", "rotate-secret", "github", "--grace", "1h"]) == 0
    assert main(["secrets", "rotate-key"]) == 0
    last = capsys.readouterr()
    assert "re-encrypted 0 secrets under the current key, 3 already current" in last.out
    for printed in (dry.out, dry.err, done.out, done.err, last.out, last.err):
        assert old not in printed and new not in printed


def test_a_secret_under_an_unknown_key_is_one_line_naming_the_row(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    lost = Fernet.generate_key().decode()
    use(monkeypatch, db_url, lost)
    assert main(["webhooks", "add-source", "github", "--org", "acme"]) == 0
    capsys.readouterr()
    current, previous = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    use(monkeypatch, db_url, current, previous)
    assert main(["secrets", "rotate-key"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: webhook source 'github': its secret cannot be decrypted")
    assert err.count("\n") == 1
    assert all(key not in err for key in (lost, current, previous))


def test_a_malformed_previous_key_is_one_line_naming_the_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    use(monkeypatch, db_url, Fernet.generate_key().decode(), "oops-not-a-key")
    assert main(["secrets", "rotate-key"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: BATON_SECRET_KEY_PREVIOUS: entry 1 of 1") and "oops" not in err
