"""A Postgres outage while an agent call runs: the answer is kept once the database is back,
and the agent is called once (the completion write waits the outage out)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import ClassVar

import pytest
from dagster import instance_for_test
from sqlalchemy.engine import make_url

from agent_resources.base import AgentRequest, AgentResult
from agent_resources.resources import AgentResource
from baton.store.service import RunStore
from tests.helpers import compile_text, execute
from tests.orchestration_defs.pg_outage import OutageProxy

pytestmark = pytest.mark.postgres

ONE_STEP = """
slug: paid-for
name: Paid for
version: 1
steps:
  - id: answer
    agent: echo
    with: {question: why}
"""

OUTAGE_SECONDS = 3.0


class OutageAgent(AgentResource):
    """Answers, but takes the database down just before (back up a few seconds later)."""

    proxies: ClassVar[dict[str, OutageProxy]] = {}
    calls: ClassVar[dict[str, int]] = {}
    key: str

    def run(self, *, request: AgentRequest) -> AgentResult:
        self.calls[self.key] = self.calls.get(self.key, 0) + 1
        proxy = self.proxies[self.key]
        proxy.down()
        threading.Timer(OUTAGE_SECONDS, proxy.up).start()
        return AgentResult(output={"answer": "because", "key": request.idempotency_key})


@pytest.fixture
def proxy(pg_db: str) -> Iterator[OutageProxy]:
    url = make_url(pg_db)
    outage = OutageProxy((url.host or "127.0.0.1", url.port or 5432))
    yield outage
    outage.close()


def test_an_outage_after_the_call_keeps_the_answer_and_calls_once(
    pg_db: str, proxy: OutageProxy
) -> None:
    proxied = make_url(pg_db).set(port=proxy.port).render_as_string(hide_password=False)
    _, job = compile_text(ONE_STEP, pg_db)
    key = uuid.uuid4().hex
    OutageAgent.proxies[key] = proxy
    with instance_for_test() as instance:
        result = execute(job, instance, proxied, agent=OutageAgent(key=key))
        logs = [e.user_message for e in instance.all_logs(result.run_id)]
    assert result.success
    assert OutageAgent.calls[key] == 1
    assert proxy.refused > 0  # the store really was unreachable for a while
    assert any("the store is unreachable" in m for m in logs)
    [run] = RunStore(pg_db).list_runs()
    detail = RunStore(pg_db).run_detail(run.id)
    assert run.status == "completed"
    [step] = detail.steps
    assert step.status == "completed"
    assert step.output == {"answer": "because", "key": f"{run.id}:answer:1"}
