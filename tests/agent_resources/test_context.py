"""Contract tests of the context agent (the ``summarizer`` entry) against a real local server."""

from __future__ import annotations

from typing import Any

import pytest

from agent_resources.base import AgentError, AgentRequest, AgentResult
from agent_resources.catalog import agent_catalog
from agent_resources.context import ContextAgent
from tests.fakes.http import FakeServer, Reply

KEY = "sk-test-0123456789abcdefghij"
CHAT = "/v1/chat/completions"
ROWS = [
    {"region": "North", "month": "2024-01", "revenue": 120000, "costs": 80000,
     "churn_rate": 0.021, "mrr": 10000},
    {"region": "North", "month": "2024-02", "revenue": 126000, "costs": 81000,
     "churn_rate": 0.018, "mrr": 10500},
    {"region": "South", "month": "2024-01", "revenue": 95000, "costs": 70000,
     "churn_rate": 0.034, "mrr": 7900},
    {"region": "South", "month": "2024-02", "revenue": 97500, "costs": 71000,
     "churn_rate": 0.031, "mrr": 8100},
]  # fmt: skip
ROWS_SUMMARY = """\
4 rows; region: North, South; month: 2024-01, 2024-02.
Revenue: total 438,500; average 109,625; min 95,000 (South, 2024-01); max 126,000 (North, 2024-02).
Costs: total 302,000; average 75,500; min 70,000 (South, 2024-01); max 81,000 (North, 2024-02).
Churn rate: average 0.026; min 0.018 (North, 2024-02); max 0.034 (South, 2024-01).
MRR: total 36,500; average 9,125; min 7,900 (South, 2024-01); max 10,500 (North, 2024-02).
By region: North (2 rows) revenue 246,000, costs 161,000, churn rate 0.0195 avg, MRR 20,500; \
South (2 rows) revenue 192,500, costs 141,000, churn rate 0.0325 avg, MRR 16,000.
North, 2024-01: revenue 120,000, costs 80,000, churn rate 0.021, MRR 10,000.
North, 2024-02: revenue 126,000, costs 81,000, churn rate 0.018, MRR 10,500.
South, 2024-01: revenue 95,000, costs 70,000, churn rate 0.034, MRR 7,900.
South, 2024-02: revenue 97,500, costs 71,000, churn rate 0.031, MRR 8,100."""


def completion(content: str = "Revenue grew.") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49},
    }


def agent(**config: Any) -> ContextAgent:
    entry = agent_catalog()["summarizer"]
    return ContextAgent(entry.model_copy(update={"config": {**entry.config, **config}}))


def call(
    target: ContextAgent,
    value: Any,
    env: dict[str, str] | None = None,
    timeout: float | None = 2.0,
) -> AgentResult:
    request = AgentRequest(
        run_id="r", step_id="s", attempt=1, input=value, env=env or {}, timeout_seconds=timeout
    )
    return target.run(request)


def openai_agent(server: FakeServer) -> ContextAgent:
    return agent(provider="openai", base_url=f"{server.url}/v1")


def failure(target: ContextAgent, env: dict[str, str] | None = None, **kw: Any) -> AgentError:
    with pytest.raises(AgentError) as caught:
        call(target, {"text": "Revenue grew."}, env or {"OPENAI_API_KEY": KEY}, **kw)
    assert KEY not in str(caught.value)
    return caught.value


def test_catalog_entry_declares_its_env() -> None:
    entry = agent_catalog()["summarizer"]
    specs = {spec.name: spec for spec in entry.env}
    assert entry.type == "context"
    assert specs["OPENAI_API_KEY"].is_secret
    assert not specs["OPENAI_BASE_URL"].is_secret
    assert entry.missing_env({}) == []


def test_extractive_rows_offline_is_deterministic_and_readable() -> None:
    first = call(agent(), {"rows": ROWS})
    second = call(agent(), {"rows": ROWS})
    assert first.output == {"summary": ROWS_SUMMARY, "provider": "extractive", "model": None}
    assert second.output == first.output
    assert first.usage["estimated"] is True
    assert first.usage["total_tokens"] == (
        first.usage["prompt_tokens"] + first.usage["completion_tokens"]
    )
    assert first.usage["completion_tokens"] > 0
    assert "latency_ms" in first.usage


def test_extractive_rows_are_capped_by_max_rows() -> None:
    summary = call(agent(max_rows=2), {"rows": ROWS}).output["summary"]
    assert summary.endswith("North, 2024-02: revenue 126,000, costs 81,000, churn rate 0.018, "
                            "MRR 10,500.\n… and 2 more rows.")  # fmt: skip
    assert call(agent(), {"rows": []}).output["summary"] == "No rows."


def test_extractive_text_keeps_top_sentences_in_original_order() -> None:
    text = (
        "Revenue grew in every region this quarter. The weather was mild. North revenue grew "
        "fastest, and North churn fell. The office moved to a new floor. South churn stayed "
        "high, so South revenue grew less. Lunch was served on Fridays."
    )
    result = call(agent(), {"text": text, "max_sentences": 3})
    assert result.output["summary"] == (
        "Revenue grew in every region this quarter. North revenue grew fastest, and North churn "
        "fell. South churn stayed high, so South revenue grew less."
    )
    assert call(agent(max_sentences=10), {"text": text}).output["summary"] == text


def test_input_needs_text_or_rows() -> None:
    with pytest.raises(AgentError) as caught:
        call(agent(), {"instructions": "be brief"})
    assert caught.value.kind == "validation"
    assert not caught.value.retryable


def test_auto_uses_openai_when_the_key_is_set(server: FakeServer) -> None:
    server.route("POST", CHAT, lambda _req: Reply(200, completion("North leads; South lags.")))
    env = {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": f"{server.url}/v1"}
    result = call(agent(), {"rows": ROWS, "instructions": "Compare regions."}, env)
    assert result.output == {
        "summary": "North leads; South lags.",
        "provider": "openai",
        "model": "gpt-4o-mini-2024-07-18",
    }
    assert result.usage["prompt_tokens"] == 42
    assert result.usage["completion_tokens"] == 7
    assert result.usage["total_tokens"] == 49
    assert "estimated" not in result.usage
    [sent] = server.calls("POST", CHAT)
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    body = sent.json()
    assert body["model"] == "gpt-4o-mini"
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert "Compare regions." in body["messages"][1]["content"]
    assert '"churn_rate": 0.021' in body["messages"][1]["content"]


def test_openai_provider_without_key_is_a_config_error() -> None:
    error = failure(agent(provider="openai"), env={"OPENAI_BASE_URL": "http://127.0.0.1:9"})
    assert error.kind == "config"
    assert not error.retryable
    assert "OPENAI_API_KEY" in str(error)


def test_429_is_rate_limited_with_retry_after(server: FakeServer) -> None:
    server.route("POST", CHAT, lambda _req: Reply(429, {"error": "slow"}, {"Retry-After": "7"}))
    error = failure(openai_agent(server))
    assert error.kind == "rate_limited"
    assert error.retryable
    assert error.retry_after == 7.0


def test_500_then_success(server: FakeServer) -> None:
    server.script("POST", CHAT, [Reply(500, {"error": "boom"}), Reply(200, completion())])
    target = openai_agent(server)
    error = failure(target)
    assert error.kind == "server"
    assert error.retryable
    result = call(target, {"text": "Revenue grew."}, {"OPENAI_API_KEY": KEY})
    assert result.output["summary"] == "Revenue grew."
    assert len(server.calls("POST", CHAT)) == 2


def test_timeout(server: FakeServer) -> None:
    server.route("POST", CHAT, lambda _req: Reply(200, completion(), delay=0.3))
    error = failure(openai_agent(server), timeout=0.05)
    assert error.kind == "timeout"
    assert error.retryable


def test_unreachable_server_is_a_timeout_kind() -> None:
    error = failure(agent(provider="openai", base_url="http://127.0.0.1:9/v1"))
    assert error.kind == "timeout"
    assert error.retryable


@pytest.mark.parametrize(
    "reply",
    [Reply(200, raw=b"not json"), Reply(200, {"choices": []}), Reply(200, ["a", "list"])],
    ids=["not-json", "no-choices", "not-an-object"],
)
def test_malformed_body_is_bad_response(server: FakeServer, reply: Reply) -> None:
    server.route("POST", CHAT, lambda _req: reply)
    error = failure(openai_agent(server))
    assert error.kind == "bad_response"
    assert error.retryable


def test_4xx_is_a_client_error_without_the_key(server: FakeServer) -> None:
    body = {"error": {"message": f"Incorrect API key provided: {KEY}"}}
    server.route("POST", CHAT, lambda _req: Reply(401, body))
    error = failure(openai_agent(server))
    assert error.kind == "client"
    assert not error.retryable
    assert "401" in str(error)
    assert "Incorrect API key provided" in str(error)
    assert KEY not in repr(error.__cause__) and error.__cause__ is None


def test_key_echoed_in_the_completion_is_masked(server: FakeServer) -> None:
    server.route("POST", CHAT, lambda _req: Reply(200, completion(f"your key is {KEY}")))
    result = call(openai_agent(server), {"text": "x"}, {"OPENAI_API_KEY": KEY})
    assert KEY not in str(result.output)
