"""Contract tests of the api agent (the ``marketing-swarm`` entry) against a real local server."""

from __future__ import annotations

from typing import Any

import pytest

from agent_resources.api import ApiAgent
from agent_resources.base import AgentError, AgentRequest, AgentResult
from agent_resources.catalog import agent_catalog
from agent_resources.http import retry_after_seconds
from tests.fakes.http import FakeServer, Reply

KEY = "n8n-api-key-0123456789"
HOOK = "/webhook/marketing-swarm"
STATUS = "/api/v1/executions/exec-1"
BRIEF = {"product": "Baton", "audience": "data teams", "channels": ["email", "linkedin"]}
RESULT = {"campaign": "Conduct your agents", "posts": 3}


def agent(**config: Any) -> ApiAgent:
    entry = agent_catalog()["marketing-swarm"]
    settings = {**entry.config, "mode": "sync", "poll_interval_seconds": 0.01, **config}
    return ApiAgent(entry.model_copy(update={"config": settings}))


def call(
    target: ApiAgent, server: FakeServer | None, timeout: float = 2.0, value: Any = BRIEF
) -> AgentResult:
    env = {"N8N_API_KEY": KEY}
    if server is not None:
        env["N8N_BASE_URL"] = server.url + "/"
    request = AgentRequest(
        run_id="run-7", step_id="draft", attempt=2, input=value, env=env, timeout_seconds=timeout
    )
    return target.run(request)


def failure(target: ApiAgent, server: FakeServer | None, **kw: Any) -> AgentError:
    with pytest.raises(AgentError) as caught:
        call(target, server, **kw)
    assert KEY not in str(caught.value)
    return caught.value


def execution(status: str, finished: bool, data: Any = None) -> Reply:
    return Reply(200, {"id": "exec-1", "finished": finished, "status": status, "data": data})


def test_catalog_entry_declares_its_env() -> None:
    entry = agent_catalog()["marketing-swarm"]
    specs = {spec.name: spec for spec in entry.env}
    assert entry.type == "api"
    assert specs["N8N_BASE_URL"].required
    assert specs["N8N_API_KEY"].is_secret
    assert entry.missing_env({}) == ["N8N_BASE_URL"]


def test_sync_success_sends_input_key_and_idempotency_key(server: FakeServer) -> None:
    server.route("POST", HOOK, lambda _req: Reply(200, RESULT))
    result = call(agent(), server)
    assert result.output == RESULT
    assert "latency_ms" in result.usage
    [sent] = server.calls("POST", HOOK)
    assert sent.json() == BRIEF
    assert sent.headers["x-n8n-api-key"] == KEY
    assert sent.headers["idempotency-key"] == "run-7:draft:2"
    assert sent.headers["content-type"] == "application/json"


def test_payload_key_and_auth_header_are_configurable(server: FakeServer) -> None:
    server.route("POST", HOOK, lambda _req: Reply(200, RESULT))
    call(agent(payload_key="brief", auth_header="Authorization-Token"), server)
    [sent] = server.calls("POST", HOOK)
    assert sent.json() == {"brief": BRIEF}
    assert sent.headers["authorization-token"] == KEY
    assert "x-n8n-api-key" not in sent.headers


def test_missing_base_url_is_a_config_error() -> None:
    error = failure(agent(), None)
    assert error.kind == "config"
    assert not error.retryable
    assert "N8N_BASE_URL" in str(error)


def test_429_is_rate_limited_with_retry_after(server: FakeServer) -> None:
    server.route("POST", HOOK, lambda _req: Reply(429, {"message": "slow"}, {"Retry-After": "3"}))
    error = failure(agent(), server)
    assert error.kind == "rate_limited"
    assert error.retryable
    assert error.retry_after == 3.0


def test_retry_after_accepts_an_http_date() -> None:
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert retry_after_seconds("1.5") == 1.5
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_500_then_success(server: FakeServer) -> None:
    server.script("POST", HOOK, [Reply(502, {"message": "bad gateway"}), Reply(200, RESULT)])
    target = agent()
    error = failure(target, server)
    assert error.kind == "server"
    assert error.retryable
    assert call(target, server).output == RESULT
    assert len(server.calls("POST", HOOK)) == 2


def test_timeout(server: FakeServer) -> None:
    server.route("POST", HOOK, lambda _req: Reply(200, RESULT, delay=0.3))
    error = failure(agent(), server, timeout=0.05)
    assert error.kind == "timeout"
    assert error.retryable


def test_malformed_body_is_bad_response(server: FakeServer) -> None:
    server.route("POST", HOOK, lambda _req: Reply(200, raw=b"not json"))
    error = failure(agent(), server)
    assert error.kind == "bad_response"
    assert "not JSON" in str(error)


def test_4xx_is_a_client_error_without_the_key(server: FakeServer) -> None:
    body = {"message": f"Authorization data is wrong: {KEY}"}
    server.route("POST", HOOK, lambda _req: Reply(403, body))
    error = failure(agent(), server)
    assert error.kind == "client"
    assert not error.retryable
    assert "403" in str(error)
    assert "Authorization data is wrong" in str(error)


def test_poll_until_finished(server: FakeServer) -> None:
    server.route("POST", HOOK, lambda _req: Reply(202, {"executionId": "exec-1"}))
    running = execution("running", False)
    done = execution("success", True, RESULT)
    server.script("GET", STATUS, [running, running, done])
    result = call(agent(mode="poll"), server)
    assert result.output == RESULT
    assert result.usage["polls"] == 3
    assert result.usage["execution_id"] == "exec-1"
    polls = server.calls("GET", STATUS)
    assert len(polls) == 3
    assert all(p.headers["x-n8n-api-key"] == KEY for p in polls)
    assert all(p.headers["idempotency-key"] == "run-7:draft:2" for p in polls)
    assert polls[0].query == {"includeData": ["true"]}


def test_poll_rides_out_transient_status_errors(server: FakeServer) -> None:
    server.route("POST", HOOK, lambda _req: Reply(200, {"executionId": "exec-1"}))
    server.script("GET", STATUS, [Reply(503), execution("success", True, RESULT)])
    assert call(agent(mode="poll"), server).output == RESULT
    assert len(server.calls("POST", HOOK)) == 1


def test_poll_deadline_is_a_timeout(server: FakeServer) -> None:
    server.route("POST", HOOK, lambda _req: Reply(200, {"executionId": "exec-1"}))
    server.route("GET", STATUS, lambda _req: execution("running", False))
    error = failure(agent(mode="poll"), server, timeout=0.15)
    assert error.kind == "timeout"
    assert error.retryable
    assert "exec-1" in str(error)


@pytest.mark.parametrize(("retry", "retryable"), [(True, True), (False, False)])
def test_failed_execution_is_a_server_error(
    server: FakeServer, retry: bool, retryable: bool
) -> None:
    server.route("POST", HOOK, lambda _req: Reply(200, {"executionId": "exec-1"}))
    data = {"resultData": {"error": {"message": f"node failed with {KEY}"}}}
    server.route("GET", STATUS, lambda _req: execution("error", False, data))
    error = failure(agent(mode="poll", retry_failed_executions=retry), server)
    assert error.kind == "server"
    assert error.retryable is retryable
    assert "node failed" in str(error)


def test_poll_without_execution_id_is_bad_response(server: FakeServer) -> None:
    server.route("POST", HOOK, lambda _req: Reply(200, {"message": "Workflow was started"}))
    error = failure(agent(mode="poll"), server)
    assert error.kind == "bad_response"
    assert "executionId" in str(error)


def test_status_4xx_while_polling_fails_at_once(server: FakeServer) -> None:
    server.route("POST", HOOK, lambda _req: Reply(200, {"executionId": "exec-1"}))
    server.route("GET", STATUS, lambda _req: Reply(404, {"message": "not found"}))
    error = failure(agent(mode="poll"), server)
    assert error.kind == "client"
    assert len(server.calls("GET", STATUS)) == 1


PUBLISH_KEY = "publish-key-0123456789"
POST = {"channel": "finance-kpis", "period": "2025-01 to 2025-03", "summary": "Revenue rose."}


def publish(env: dict[str, str]) -> AgentResult:
    request = AgentRequest(run_id="run-9", step_id="publish", attempt=1, input=POST, env=env)
    return ApiAgent(agent_catalog()["publisher"]).run(request)


def test_publisher_posts_to_the_target_with_its_key(server: FakeServer) -> None:
    server.route("POST", "/publish", lambda req: Reply(201, {"id": "p-1", "echo": req.json()}))
    result = publish({"BATON_PUBLISH_URL": server.url, "BATON_PUBLISH_KEY": PUBLISH_KEY})
    assert result.output == {"id": "p-1", "echo": POST}
    [sent] = server.calls("POST", "/publish")
    assert sent.json() == POST
    assert sent.headers["x-api-key"] == PUBLISH_KEY
    assert sent.headers["idempotency-key"] == "run-9:publish:1"


def test_publisher_without_a_url_is_a_dry_run_that_sends_nothing(server: FakeServer) -> None:
    result = publish({"BATON_PUBLISH_KEY": PUBLISH_KEY})
    assert result.output == {
        "dry_run": True,
        "sent": False,
        "reason": "BATON_PUBLISH_URL is not set",
        "path": "/publish",
        "payload": POST,
    }
    assert server.requests == []
    assert agent_catalog()["publisher"].missing_env({}) == []


def test_a_dry_run_masks_a_secret_found_in_the_payload() -> None:
    leaked = {**POST, "summary": f"key {PUBLISH_KEY}"}
    request = AgentRequest(
        run_id="r", step_id="s", attempt=1, input=leaked, env={"BATON_PUBLISH_KEY": PUBLISH_KEY}
    )
    result = ApiAgent(agent_catalog()["publisher"]).run(request)
    assert PUBLISH_KEY not in str(result.output)
