"""``POST /webhooks/{source}``: every refusal answers the right status and stores nothing;
an accepted webhook is in the inbox before the answer, and a replay is stored once."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from baton.api import metrics
from baton.api.app import create_app
from baton.settings import Settings, WebhookSettings
from baton.webhooks.inbox import Inbox
from baton.webhooks.signing import generate_secret, headers
from baton.webhooks.sources import Sources

BODY = json.dumps({"action": "opened", "pr": {"title": "Fix", "number": 7}}).encode()
LIMIT = 2048


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(database_url=SecretStr(db_url), webhooks=WebhookSettings(max_body_bytes=LIMIT))


@pytest.fixture
def secret(settings: Settings) -> str:
    return Sources(settings.db_url, settings).add("github", "acme")


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def _counter(name: str, **labels: str) -> float:
    value = metrics.PROCESS_REGISTRY.get_sample_value(name, labels)
    return value or 0.0


def post(client: TestClient, body: bytes, signed: dict[str, str], source: str = "github") -> object:
    return client.post(
        f"/webhooks/{source}",
        content=body,
        headers={"content-type": "application/json", **signed},
    )


def test_a_good_webhook_is_stored_then_answered_202(
    client: TestClient, secret: str, settings: Settings
) -> None:
    before = _counter("baton_webhooks_received_total", source="github")
    response = post(client, BODY, headers(secret, "msg_good", BODY))
    assert response.status_code == 202  # type: ignore[attr-defined]
    assert response.json() == {"status": "accepted", "webhook_id": "msg_good"}  # type: ignore[attr-defined]
    [item] = Inbox(settings.db_url).list()
    assert (item.source, item.organization, item.webhook_id) == ("github", "acme", "msg_good")
    assert item.body == json.loads(BODY) and item.status == "pending"
    assert _counter("baton_webhooks_received_total", source="github") == before + 1


def test_posted_three_times_it_is_stored_once(
    client: TestClient, secret: str, settings: Settings
) -> None:
    counted = ("received", "duplicate", "replay")

    def counters() -> tuple[float, ...]:
        return (
            _counter("baton_webhooks_received_total", source="github"),
            _counter("baton_webhooks_duplicate_total", source="github"),
            _counter("baton_webhooks_refused_total", source="github", reason="replay"),
        )

    before = counters()
    signed = headers(secret, "msg_thrice", BODY)
    answers = [post(client, BODY, signed) for _ in range(3)]
    assert [a.status_code for a in answers] == [202, 200, 200]  # type: ignore[attr-defined]
    assert answers[1].json() == {"status": "duplicate", "webhook_id": "msg_thrice"}  # type: ignore[attr-defined]
    assert Inbox(settings.db_url).count() == 1
    # The docs call a replay a success: one accepted, two duplicates, no refusal.
    grown = dict(
        zip(counted, (a - b for a, b in zip(counters(), before, strict=True)), strict=True)
    )
    assert grown == {"received": 1, "duplicate": 2, "replay": 0}


def _refused(
    client: TestClient, settings: Settings, response: object, status: int, reason: str
) -> None:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    error = response.json()["error"]  # type: ignore[attr-defined]
    assert set(error) >= {"code", "message"}
    assert Inbox(settings.db_url).count() == 0, "a refused webhook must be stored nowhere"


def test_a_bad_signature_is_refused_401(
    client: TestClient, secret: str, settings: Settings
) -> None:
    before = _counter("baton_webhooks_refused_total", source="github", reason="bad_signature")
    signed = headers(generate_secret(), "msg_bad", BODY)
    _refused(client, settings, post(client, BODY, signed), 401, "bad_signature")
    tampered = headers(secret, "msg_bad", BODY)
    _refused(client, settings, post(client, BODY + b" ", tampered), 401, "bad_signature")
    after = _counter("baton_webhooks_refused_total", source="github", reason="bad_signature")
    assert after == before + 2


# +305, not +301: a future stamp gets a second closer while the request is on its way, and a
# tick between signing and checking made +301 land on the 300 s tolerance now and then.
@pytest.mark.parametrize("skew", [-301, 305, -86_400])
def test_an_old_or_future_timestamp_is_refused_401(
    client: TestClient, secret: str, settings: Settings, skew: int
) -> None:
    signed = headers(secret, "msg_old", BODY, now=int(time.time()) + skew)
    _refused(client, settings, post(client, BODY, signed), 401, "stale_timestamp")


def test_a_malformed_timestamp_is_refused_400(
    client: TestClient, secret: str, settings: Settings
) -> None:
    signed = {**headers(secret, "msg_ts", BODY), "webhook-timestamp": "soon"}
    _refused(client, settings, post(client, BODY, signed), 400, "bad_timestamp")


def test_missing_signature_headers_are_refused_401(
    client: TestClient, secret: str, settings: Settings
) -> None:
    _refused(client, settings, post(client, BODY, {}), 401, "missing_headers")


def test_malformed_json_with_a_valid_signature_is_refused_400(
    client: TestClient, secret: str, settings: Settings
) -> None:
    body = b'{"action": '
    _refused(client, settings, post(client, body, headers(secret, "msg_json", body)), 400, "json")
    binary = b"\xff\xfe"
    signed = headers(secret, "msg_bin", binary)
    _refused(client, settings, post(client, binary, signed), 400, "json")


def test_an_unknown_source_is_refused_404(
    client: TestClient, secret: str, settings: Settings
) -> None:
    before = _counter("baton_webhooks_refused_total", source="unknown", reason="unknown_source")
    signed = headers(secret, "msg_who", BODY)
    _refused(client, settings, post(client, BODY, signed, source="gitlab"), 404, "unknown")
    after = _counter("baton_webhooks_refused_total", source="unknown", reason="unknown_source")
    assert after == before + 1


def test_an_oversized_body_is_refused_413(
    client: TestClient, secret: str, settings: Settings
) -> None:
    body = json.dumps({"pad": "x" * LIMIT}).encode()
    _refused(client, settings, post(client, body, headers(secret, "msg_big", body)), 413, "size")


def test_the_size_limit_does_not_trust_content_length(
    client: TestClient, secret: str, settings: Settings
) -> None:
    body = json.dumps({"pad": "x" * (LIMIT * 4)}).encode()
    signed = headers(secret, "msg_chunked", body)

    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
        for start in range(0, len(body), 512):
            yield body[start : start + 512]

    response = client.post("/webhooks/github", content=chunks(), headers=signed)
    assert "content-length" not in {k.lower() for k in response.request.headers}
    _refused(client, settings, response, 413, "size")


def test_a_body_at_the_limit_is_accepted(client: TestClient, secret: str) -> None:
    body = json.dumps({"pad": "x" * (LIMIT - 11)}).encode()
    assert len(body) == LIMIT
    assert post(client, body, headers(secret, "msg_edge", body)).status_code == 202  # type: ignore[attr-defined]


def test_the_old_secret_works_during_the_grace_period(
    client: TestClient, secret: str, settings: Settings
) -> None:
    from datetime import timedelta

    new = Sources(settings.db_url, settings).rotate("github", timedelta(hours=1))
    assert post(client, BODY, headers(secret, "msg_old_secret", BODY)).status_code == 202  # type: ignore[attr-defined]
    assert post(client, BODY, headers(new, "msg_new_secret", BODY)).status_code == 202  # type: ignore[attr-defined]
    Sources(settings.db_url, settings).rotate("github", timedelta(0))
    response = post(client, BODY, headers(new, "msg_after_grace", BODY))
    assert response.status_code == 401  # type: ignore[attr-defined]


def test_a_replay_of_an_accepted_id_with_a_stale_timestamp_is_refused(
    client: TestClient, secret: str, settings: Settings
) -> None:
    assert post(client, BODY, headers(secret, "msg_r", BODY)).status_code == 202  # type: ignore[attr-defined]
    stale = headers(secret, "msg_r", BODY, now=int(time.time()) - 600)
    assert post(client, BODY, stale).status_code == 401  # type: ignore[attr-defined]
    assert Inbox(settings.db_url).count() == 1


def test_the_route_is_in_the_openapi_spec(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/webhooks/{source}"]["post"]
    assert {"202", "200", "400", "401", "404", "413"} <= set(operation["responses"])
