"""``POST /webhooks/{source}`` for a source whose stored secret no configured key decrypts:
503 in the error shape with Retry-After (never a 500), nothing stored, counted under
``reason="secret_undecryptable"`` and one log line naming the source and the fix, never the
secret or a key. Real API, SQLite and Postgres."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from pydantic import SecretStr

from baton.api import metrics
from baton.api.app import create_app
from baton.settings import Settings
from baton.webhooks.inbox import Inbox
from baton.webhooks.signing import headers
from baton.webhooks.sources import Sources

OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()
BODY = json.dumps({"action": "opened"}).encode()
REASON = "secret_undecryptable"


def keyed(db_url: str, key: str, previous: str | None = None) -> Settings:
    return Settings(
        database_url=SecretStr(db_url),
        secret_key=SecretStr(key),
        secret_key_previous=SecretStr(previous) if previous else None,
    )


@pytest.fixture
def secret(db_url: str) -> str:
    """The source 'github', stored under OLD_KEY."""
    return Sources(db_url, keyed(db_url, OLD_KEY)).add("github", "acme")


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    """The API after the key changed to NEW_KEY without the old one as previous."""
    with TestClient(create_app(keyed(db_url, NEW_KEY))) as client:
        yield client


def _refused() -> float:
    labels = {"source": "github", "reason": REASON}
    return metrics.PROCESS_REGISTRY.get_sample_value("baton_webhooks_refused_total", labels) or 0


def test_an_undecryptable_source_secret_answers_503_and_stores_nothing(
    db_url: str, secret: str, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    before = _refused()
    response = client.post(
        "/webhooks/github",
        content=BODY,
        headers={"content-type": "application/json", **headers(secret, "msg_1", BODY)},
    )
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "60"
    error = response.json()["error"]
    assert error["code"] == "unavailable"
    assert "cannot be decrypted" in error["message"] and "retry later" in error["message"]
    assert "Traceback" not in response.text
    assert Inbox(db_url).count() == 0, "nothing is stored when the signature cannot be checked"
    assert _refused() == before + 1
    scraped = client.get("/metrics").text
    assert f'baton_webhooks_refused_total{{reason="{REASON}",source="github"}}' in scraped
    lines = [r.getMessage() for r in caplog.records if "webhook source 'github'" in r.getMessage()]
    assert len(lines) == 1
    assert "BATON_SECRET_KEY_PREVIOUS" in lines[0] and "rotate-key" in lines[0]
    for value in (secret, OLD_KEY, NEW_KEY):
        assert value not in caplog.text and value not in response.text


def test_with_the_old_key_as_previous_the_same_webhook_is_accepted(
    db_url: str, secret: str
) -> None:
    with TestClient(create_app(keyed(db_url, NEW_KEY, previous=OLD_KEY))) as fixed:
        response = fixed.post(
            "/webhooks/github",
            content=BODY,
            headers={"content-type": "application/json", **headers(secret, "msg_2", BODY)},
        )
    assert response.status_code == 202, response.text
    assert Inbox(db_url).count() == 1


def test_the_503_is_in_the_openapi_spec(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "503" in spec["paths"]["/webhooks/{source}"]["post"]["responses"]
