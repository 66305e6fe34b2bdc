"""Webhooks with the real processes (`baton up`: webserver, daemon, API): a signed webhook
posted three times to the live API starts exactly one run through the daemon's webhook
sensor, and the delivery sensor posts its ``run.completed`` to a subscriber, signed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from baton.settings import SHIPPED_LIBRARY, get_settings
from baton.store.service import RunStore
from baton.webhooks.signing import headers, verify
from tests.e2e.conftest import deployment  # noqa: F401  (the `baton up` fixture)
from tests.fakes.http import FakeServer, Reply

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
BATON = str(Path(sys.executable).with_name("baton"))

TRIGGERED = """
slug: webhook-hello
name: Webhook hello
version: 1
organization: acme
inputs:
  name: {type: string, required: true}
triggers:
  - webhook:
      source: github
      filter: "{{ body.action == 'opened' }}"
      inputs: {name: "{{ body.sender.login }}"}
steps:
  - id: greet
    agent: echo
    with: {greeting: "Hello, {{ inputs.name }}."}
outputs:
  greeting: "{{ steps.greet.output.greeting }}"
"""


@pytest.fixture
def library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "library"
    folder.mkdir()
    (folder / "webhook-hello.yaml").write_text(TRIGGERED)
    monkeypatch.setenv("BATON_LIBRARY_DIR", f"{SHIPPED_LIBRARY}:{folder}")
    get_settings.cache_clear()
    return folder


@pytest.fixture
def subscriber() -> Iterator[FakeServer]:
    with FakeServer() as server:
        server.route("POST", "/baton", lambda _r: Reply(200, {"ok": True}))
        yield server


def _baton(*args: str) -> str:
    done = subprocess.run(
        [BATON, *args], capture_output=True, text=True, timeout=120, env=os.environ.copy()
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[0].strip()


def _wait(predicate: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1)


def test_a_webhook_posted_three_times_starts_one_run_and_its_completion_is_delivered(
    library: Path,
    subscriber: FakeServer,
    deployment: str,  # noqa: F811
) -> None:
    settings = get_settings()
    api = f"http://{settings.api.host}:{settings.api.port}"
    source_secret = _baton("webhooks", "add-source", "github", "--org", "acme")
    sub_secret = _baton(
        "webhooks", "subscribe", "--org", "acme", "--url", f"{subscriber.url}/baton",
        "--events", "run.completed",
    )  # fmt: skip
    _wait(lambda: _healthy(api), 60, "the API")

    body = json.dumps({"action": "opened", "sender": {"login": "octocat"}}).encode()
    signed = headers(source_secret, "msg_e2e_1", body)
    codes = [
        httpx.post(f"{api}/webhooks/github", content=body, headers=signed, timeout=30).status_code
        for _ in range(3)
    ]
    assert codes == [202, 200, 200]

    store = RunStore(settings.db_url)

    def completed() -> bool:
        runs = store.list_runs(limit=10)
        return bool(runs) and all(r.status in ("completed", "failed") for r in runs)

    _wait(completed, 180, "the webhook's run to finish")
    runs = store.list_runs(limit=10)
    assert [(r.orchestration, r.status, r.created_by) for r in runs] == [
        ("webhook-hello", "completed", "webhook:github")
    ]
    assert runs[0].outputs == {"greeting": "Hello, octocat."}

    _wait(lambda: subscriber.calls("POST", "/baton"), 60, "the run.completed delivery")
    [delivery] = subscriber.calls("POST", "/baton")
    verify([sub_secret], delivery.headers, delivery.body)
    sent = json.loads(delivery.body)
    assert sent["type"] == "run.completed" and sent["data"]["run_id"] == str(runs[0].id)


def _healthy(api: str) -> bool:
    try:
        return httpx.get(f"{api}/healthz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False
