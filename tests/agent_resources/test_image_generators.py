"""Contract tests of the two image generators (function agents) against a real local server
that answers like the OpenAI Images API and Google's Imagen ``predict`` API."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import pytest

from agent_resources.base import AgentError, AgentRequest, AgentResult
from agent_resources.catalog import AgentEntry, agent_catalog
from agent_resources.function import FunctionAgent
from agent_resources.orchestrator import OrchestratorAgent
from tests.fakes.http import FakeServer, Reply
from tests.helpers import PNG_BYTES

B64 = base64.b64encode(PNG_BYTES).decode()


@dataclass(frozen=True)
class Provider:
    slug: str
    path: str
    key_env: str
    base_env: str
    key: str
    prefix: str  # what the base URL env var holds before the path

    def ok(self) -> dict[str, Any]:
        if "openai" in self.slug:
            return {"created": 1, "data": [{"b64_json": B64}], "usage": {"total_tokens": 9}}
        return {"predictions": [{"bytesBase64Encoded": B64, "mimeType": "image/png"}]}

    def key_header(self, headers: dict[str, str]) -> str:
        if "openai" in self.slug:
            return headers["authorization"].removeprefix("Bearer ")
        return headers["x-goog-api-key"]


OPENAI = Provider(
    "image-generator-openai",
    "/v1/images/generations",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "sk-imagetest0123456789abcdef",
    "/v1",
)
GOOGLE = Provider(
    "image-generator-google",
    "/v1beta/models/imagen-3.0-generate-002:predict",
    "GOOGLE_API_KEY",
    "GOOGLE_API_BASE",
    "AIzaSyImageTest0123456789abcdefghijklmn",
    "",
)


def agent(provider: Provider, timeout: float = 10) -> FunctionAgent:
    entry = agent_catalog()[provider.slug]
    limits = entry.limits.model_copy(update={"timeout_seconds": timeout})
    return FunctionAgent(entry.model_copy(update={"limits": limits}))


def call(
    provider: Provider, server: FakeServer | None, *, timeout: float = 10, key: bool = True
) -> AgentResult:
    env = {provider.key_env: provider.key} if key else {}
    if server is not None:
        env[provider.base_env] = server.url + provider.prefix
    request = AgentRequest(
        run_id="run-1",
        step_id="draw",
        attempt=1,
        input={"prompt": "a lighthouse at dusk"},
        env=env,
    )
    return agent(provider, timeout).run(request)


both = pytest.mark.parametrize("provider", [OPENAI, GOOGLE], ids=["openai", "google"])


@both
def test_success_keeps_the_image_as_a_deliverable(server: FakeServer, provider: Provider) -> None:
    server.script("POST", provider.path, [Reply(200, provider.ok())])
    result = call(provider, server)
    [image] = result.deliverables
    assert (image.type, image.name, image.mime_type, image.data) == (
        "image",
        "image-1",
        "image/png",
        PNG_BYTES,
    )
    assert result.output["provider"] in ("openai", "google")
    assert result.output["images"][0]["size_bytes"] == len(PNG_BYTES)
    [sent] = server.requests
    assert provider.key_header(sent.headers) == provider.key
    body = sent.json()
    prompt = body["prompt"] if "openai" in provider.slug else body["instances"][0]["prompt"]
    assert prompt == "a lighthouse at dusk"


@both
def test_429_is_retryable_and_carries_retry_after(server: FakeServer, provider: Provider) -> None:
    server.script("POST", provider.path, [Reply(429, {"error": "slow down"}, {"Retry-After": "3"})])
    with pytest.raises(AgentError) as caught:
        call(provider, server)
    assert caught.value.kind == "rate_limited"
    assert caught.value.retryable and caught.value.retry_after == 3


@both
def test_500_then_success(server: FakeServer, provider: Provider) -> None:
    server.script("POST", provider.path, [Reply(500, {"error": "oops"}), Reply(200, provider.ok())])
    with pytest.raises(AgentError) as caught:
        call(provider, server)
    assert caught.value.kind == "server" and caught.value.retryable
    assert call(provider, server).deliverables[0].data == PNG_BYTES


@both
def test_a_slow_server_is_a_retryable_timeout(server: FakeServer, provider: Provider) -> None:
    server.script("POST", provider.path, [Reply(200, provider.ok(), delay=4)])
    with pytest.raises(AgentError) as caught:
        call(provider, server, timeout=2.5)
    assert caught.value.kind == "timeout" and caught.value.retryable


@both
@pytest.mark.parametrize(
    "reply",
    [Reply(200, raw=b"{not json"), Reply(200, {"unexpected": True})],
    ids=["not-json", "wrong-shape"],
)
def test_a_malformed_body_is_a_bad_response(
    server: FakeServer, provider: Provider, reply: Reply
) -> None:
    server.script("POST", provider.path, [reply])
    with pytest.raises(AgentError) as caught:
        call(provider, server)
    assert caught.value.kind == "bad_response"


@both
def test_a_400_is_not_retried_and_the_key_is_masked(server: FakeServer, provider: Provider) -> None:
    server.script("POST", provider.path, [Reply(400, {"error": f"bad key {provider.key}"})])
    with pytest.raises(AgentError) as caught:
        call(provider, server)
    assert caught.value.kind == "client" and not caught.value.retryable
    assert provider.key not in str(caught.value)


@both
def test_without_a_key_a_placeholder_is_drawn_offline(provider: Provider) -> None:
    result = call(provider, None, key=False)
    [image] = result.deliverables
    assert image.data is not None and image.data.startswith(b"\x89PNG\r\n\x1a\n")
    assert result.output["provider"] == "offline"
    assert call(provider, None, key=False).deliverables[0].data == image.data  # deterministic


def test_the_image_orchestrator_asks_both_and_chooses(server: FakeServer) -> None:
    server.script("POST", OPENAI.path, [Reply(500, {"error": "down"})])
    server.script("POST", GOOGLE.path, [Reply(200, GOOGLE.ok())])
    entry: AgentEntry = agent_catalog()["image-orchestrator"]
    env = {
        OPENAI.key_env: OPENAI.key,
        OPENAI.base_env: server.url + "/v1",
        GOOGLE.key_env: GOOGLE.key,
        GOOGLE.base_env: server.url,
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        request = AgentRequest(run_id="r", step_id="art", attempt=1, input={"prompt": "a boat"})
        result = OrchestratorAgent(entry).run(request)
    assert result.output["choice"] == "image-generator-google"
    assert "500" in result.output["errors"]["image-generator-openai"]
    assert [d.name for d in result.deliverables] == ["image-generator-google-image-1"]
