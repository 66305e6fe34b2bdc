"""``baton webhooks subscribe|list-subscriptions|unsubscribe|deliveries|inbox``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from baton.cli.main import main


def test_subscribe_list_unsubscribe(
    capsys: pytest.CaptureFixture[str], isolated_settings: Path
) -> None:
    args = ["webhooks", "subscribe", "--org", "acme", "--url", "http://127.0.0.1:9/hook"]
    assert main([*args, "--events", "run.completed,approval.requested"]) == 0
    created = capsys.readouterr()
    [secret] = created.out.splitlines()  # alone on stdout: SECRET=$(...) keeps just it
    assert secret.startswith("whsec_")
    sub_id = created.err.split()[1]
    assert main(["webhooks", "list-subscriptions", "--json"]) == 0
    listing = capsys.readouterr().out
    [row] = json.loads(listing)
    assert row["id"] == sub_id and row["event_types"] == ["run.completed", "approval.requested"]
    assert secret not in listing
    assert main(["webhooks", "unsubscribe", sub_id]) == 0
    assert "ended" in capsys.readouterr().out
    assert main(["webhooks", "list-subscriptions", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["webhooks", "unsubscribe", sub_id]) == 1
    assert "no active subscription" in capsys.readouterr().err
    assert main(["webhooks", "deliveries"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["webhooks", "inbox"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_a_bad_event_type_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], isolated_settings: Path
) -> None:
    args = ["webhooks", "subscribe", "--org", "acme", "--url", "http://127.0.0.1:9/hook"]
    assert main([*args, "--events", "run.done"]) == 1
    assert "unknown event type 'run.done'" in capsys.readouterr().err
