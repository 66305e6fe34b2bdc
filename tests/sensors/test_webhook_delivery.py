"""The delivery sensor's report says when deliveries were not sent because a subscription's
secret cannot be decrypted, so the sensor page does not blame the endpoint (SQLite, Postgres)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet
from dagster import DagsterInstance, build_sensor_context
from pydantic import SecretStr

from baton.db.engine import session_scope
from baton.settings import Settings, get_settings
from baton.store.events import EventsRepository
from baton.webhooks.delivery import UNDECRYPTABLE
from baton.webhooks.subscriptions import Subscriptions
from orchestration_defs.compiler.resources import BatonStoreResource
from sensors.webhook_delivery import webhook_delivery_sensor
from tests.fakes.http import FakeServer, Reply

OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as fake:
        fake.route("POST", "/hook", lambda _r: Reply(204, raw=b""))
        yield fake


def test_the_report_names_deliveries_not_sent_for_an_undecryptable_secret(
    dagster_instance: DagsterInstance, server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url: str = dagster_instance.baton_db_url  # type: ignore[attr-defined]
    old = Settings(database_url=SecretStr(url), secret_key=SecretStr(OLD_KEY))
    Subscriptions(url, old).subscribe(
        organization="acme", url=f"{server.url}/hook", events=["run.completed"]
    )
    with session_scope(url) as s:
        EventsRepository(s).append(
            organization="acme", type="run.completed", run_id=None, payload={}
        )
    monkeypatch.setenv("BATON_SECRET_KEY", NEW_KEY)  # the old key dropped, none previous
    monkeypatch.delenv("BATON_SECRET_KEY_PREVIOUS", raising=False)
    get_settings.cache_clear()
    try:
        context = build_sensor_context(
            instance=dagster_instance,
            resources={"baton_store": BatonStoreResource(database_url=url)},
        )
        skip = webhook_delivery_sensor(context)
    finally:
        get_settings.cache_clear()
    report = str(skip.skip_message)  # type: ignore[union-attr]
    assert report.startswith("queued 1, delivered 0, will retry 1, failed 0")
    assert f"1 not sent: {UNDECRYPTABLE}" in report and "baton doctor" in report
    assert server.calls("POST", "/hook") == []
