"""Inbound webhooks on SQLite and Postgres: a signed body holding text that is not valid, a
number JSON cannot carry or nesting past the limit, and a webhook-id unfit to store, answer 422
naming the field and are stored nowhere; an unsigned one is refused as unsigned first."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from baton.api import metrics
from baton.api.app import create_app
from baton.settings import Settings, WebhookSettings
from baton.webhooks.inbox import Inbox
from baton.webhooks.signing import headers
from baton.webhooks.sources import Sources


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(
        database_url=SecretStr(db_url), webhooks=WebhookSettings(max_body_bytes=256 * 1024)
    )


@pytest.fixture
def secret(settings: Settings) -> str:
    return Sources(settings.db_url, settings).add("github", "acme")


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def _post(client: TestClient, body: bytes, signed: dict[str, str]) -> object:
    return client.post(
        "/webhooks/github", content=body, headers={"content-type": "application/json", **signed}
    )


BAD_BODIES = [
    ("high surrogate", rb'{"pr":{"title":"\ud800"}}', "pr.title"),
    ("low surrogate in a key", rb'{"pr":{"\udc00":1}}', 'pr["\\udc00"]'),
    ("NUL", rb'{"labels":["ok","a\u0000"]}', "labels[1]"),
    ("huge float", rb'{"n":1e999999}', "n"),
    ("huge int", b'{"n":' + b"1" * 5000 + b"}", "n"),
    ("NaN", rb'{"n":NaN}', "n"),
    ("deep", b'{"a":' + b"[" * 100_000 + b"}", "body"),
]


@pytest.mark.parametrize(
    ("body", "field"), [c[1:] for c in BAD_BODIES], ids=[c[0] for c in BAD_BODIES]
)
def test_a_signed_bad_body_is_refused_422_and_stored_nowhere(
    client: TestClient, secret: str, settings: Settings, body: bytes, field: str
) -> None:
    before = metrics.PROCESS_REGISTRY.get_sample_value(
        "baton_webhooks_refused_total", {"source": "github", "reason": "invalid"}
    )
    response = _post(client, body, headers(secret, "msg_bad", body))
    assert response.status_code == 422, response.text  # type: ignore[attr-defined]
    assert response.json()["error"]["field"] == field  # type: ignore[attr-defined]
    assert Inbox(settings.db_url).count() == 0
    after = metrics.PROCESS_REGISTRY.get_sample_value(
        "baton_webhooks_refused_total", {"source": "github", "reason": "invalid"}
    )
    assert (after or 0) == (before or 0) + 1
    assert client.get("/healthz").status_code == 200


def test_an_unsigned_bad_body_is_refused_as_unsigned(
    client: TestClient, secret: str, settings: Settings
) -> None:
    body = rb'{"pr":{"title":"\ud800"}}'
    response = _post(client, body, {})
    assert response.status_code == 401  # type: ignore[attr-defined]
    assert Inbox(settings.db_url).count() == 0


@pytest.mark.parametrize(
    "body",
    [b'{"a":"\xed\xa0\x80"}', b'{"a":"\xc0\xaf"}', b'"\xff"'],
    ids=["cesu", "overlong", "ff"],
)
def test_a_body_that_is_not_utf8_is_not_json_400(
    client: TestClient, secret: str, settings: Settings, body: bytes
) -> None:
    response = _post(client, body, headers(secret, "msg_utf", body))
    assert response.status_code == 400  # type: ignore[attr-defined]
    assert Inbox(settings.db_url).count() == 0


@pytest.mark.parametrize(
    ("webhook_id", "status", "field"),
    [("m" * 256, 422, "webhook-id"), ("msg\x00", 422, "webhook-id")],
    ids=["too long", "NUL"],
)
def test_a_webhook_id_unfit_to_store_is_refused(
    client: TestClient,
    secret: str,
    settings: Settings,
    webhook_id: str,
    status: int,
    field: str,
) -> None:
    body = b'{"ok":true}'
    response = _post(client, body, headers(secret, webhook_id, body))
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.json()["error"]["field"] == field  # type: ignore[attr-defined]
    assert Inbox(settings.db_url).count() == 0


def test_a_good_webhook_with_unicode_is_stored(
    client: TestClient, secret: str, settings: Settings
) -> None:
    body = '{"title":"Fix \\ud83d\\ude00 é", "n": 1.5}'.encode()
    response = _post(client, body, headers(secret, "m" * 255, body))
    assert response.status_code == 202, response.text  # type: ignore[attr-defined]
    [item] = Inbox(settings.db_url).list()
    assert item.body == {"title": "Fix \U0001f600 é", "n": 1.5}
