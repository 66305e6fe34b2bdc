"""``ctx.http`` through the worker's broker, against real local servers: allowed hosts only
(every way of naming another host is refused before anything is sent), no redirects followed,
the step's clock and the size caps enforced by the parent."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from agent_resources.sandbox.broker import Broker, BrokerLimits
from tests.agent_resources.sandbox.attacks import attempt
from tests.fakes.http import FakeServer, Reply

CALL = """
def run(input, ctx):
    r = ctx.http.request(input.get("method", "GET"), input["url"], **input.get("kw", {}))
    return {"status": r.status_code, "type": r.headers.get("Content-Type"), "text": r.text,
            "url": str(r.request.url), "ok": r.is_success}
"""


def http(url: str, *, hosts: list[str], **kw: Any) -> tuple[Any, str]:
    result, text = attempt(CALL, {"url": url, "kw": kw}, guarded=True, hosts=hosts)
    return (result.output if result else None), text


def test_a_call_to_an_allowed_host_goes_through_the_parent(server: FakeServer) -> None:
    server.script("POST", "/v1/things", [Reply(201, {"id": 7}, {"X-Trace": "abc"})])
    code = """
def run(input, ctx):
    r = ctx.http.post(input["url"], json={"a": 1}, headers={"Authorization": "Bearer k"},
                      params={"q": "x y"}, timeout=5)
    return {"status": r.status_code, "json": ctx.json(r), "trace": r.headers["x-trace"]}
"""
    result, text = attempt(code, {"url": server.url + "/v1/things"}, hosts=["127.0.0.1"])
    assert result is not None, text
    assert result.output == {"status": 201, "json": {"id": 7}, "trace": "abc"}
    [sent] = server.requests
    assert sent.json() == {"a": 1} and sent.query == {"q": ["x y"]}
    assert sent.headers["authorization"] == "Bearer k"
    assert sent.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:{port}/",  # the same machine by another name
        "http://127.0.0.2:{port}/",
        "http://127.0.0.1@127.0.0.2:{port}/",  # userinfo that looks like the host
        "http://[::1]:{port}/",
        "http://2130706433:{port}/",  # 127.0.0.1 as a number
        "file:///etc/passwd",
        "ftp://127.0.0.1:{port}/",
    ],
)
def test_every_other_host_is_refused_before_anything_is_sent(server: FakeServer, url: str) -> None:
    port = server.url.rsplit(":", 1)[1]
    output, text = http(url.format(port=port), hosts=["127.0.0.1"])
    assert output is None
    assert (text.startswith("sandbox: ") and "not allowed" in text) or "only http" in text, text
    assert server.requests == []


def test_a_refusal_the_code_catches_still_fails_the_call(server: FakeServer) -> None:
    code = """
def run(input, ctx):
    try:
        ctx.http.get("http://127.0.0.2:9/")
    except Exception:
        pass
    return "carried on"
"""
    result, text = attempt(code, {}, guarded=True, hosts=["127.0.0.1"])
    assert result is None and "network access to host '127.0.0.2' is not allowed" in text


def test_a_redirect_is_answered_not_followed(server: FakeServer) -> None:
    with FakeServer() as other:
        other.script("GET", "/", [Reply(200, {"secret": "elsewhere"})])
        server.script("GET", "/go", [Reply(302, {}, {"Location": other.url + "/"})])
        output, text = http(server.url + "/go", hosts=["127.0.0.1"])
        assert output is not None, text
        assert output["status"] == 302 and other.requests == []


def test_headers_that_would_redirect_the_request_are_dropped(server: FakeServer) -> None:
    server.script("GET", "/", [Reply(200, {})])
    headers = {"Host": "evil.example", "Content-Length": "999", "Transfer-Encoding": "chunked"}
    output, text = http(server.url + "/", hosts=["127.0.0.1"], headers=headers)
    assert output is not None and output["status"] == 200, text
    [sent] = server.requests
    assert sent.headers["host"] == server.url.removeprefix("http://")
    assert "transfer-encoding" not in sent.headers


def test_status_codes_keep_their_meaning_through_ctx_check(server: FakeServer) -> None:
    code = "def run(input, ctx):\n    ctx.check(ctx.http.get(input['url']))\n"
    for status, kind in ((429, "rate_limited"), (500, "server"), (404, "client")):
        server.script("GET", "/", [Reply(status, {"error": "x"}, {"Retry-After": "2"})])
        result, text = attempt(code, {"url": server.url + "/"}, guarded=True, hosts=["127.0.0.1"])
        assert result is None and text.startswith(f"{kind}: "), text


def test_a_slow_server_is_a_timeout_within_the_step(server: FakeServer) -> None:
    server.script("GET", "/", [Reply(200, {}, delay=3)])
    output, text = http(server.url + "/", hosts=["127.0.0.1"], timeout=0.5)
    assert output is None and text.startswith("timeout: ") and "timed out" in text


def test_a_huge_response_is_cut_at_the_cap(server: FakeServer) -> None:
    server.script("GET", "/", [Reply(200, raw=b"x" * 3_000_000)])
    output, text = http(server.url + "/", hosts=["127.0.0.1"])
    assert output is None and text.startswith("limit: ") and "larger than" in text


def test_the_broker_keeps_to_the_deadline_and_the_caps(server: FakeServer) -> None:
    server.script("POST", "/", [Reply(200, {"ok": True})])
    limits = BrokerLimits(max_request_bytes=10, max_response_bytes=100, max_requests=2)
    broker = Broker(["127.0.0.1"], limits, deadline=time.monotonic() + 30)
    try:
        ask = {"method": "POST", "url": server.url + "/", "timeout": 5}
        answer, body = broker.handle(ask, b"small")
        assert answer["status"] == 200 and json.loads(body) == {"ok": True}
        answer, _ = broker.handle(ask, b"x" * 11)
        assert answer["error"]["kind"] == "limit"
        answer, _ = broker.handle(ask, b"")
        assert answer["error"] == {"kind": "limit", "message": "more than 2 HTTP calls"}
    finally:
        broker.close()
    late = Broker(["127.0.0.1"], limits, deadline=time.monotonic() - 1)
    answer, _ = late.handle({"url": server.url + "/"}, b"")
    late.close()
    assert answer["error"]["kind"] == "timeout"
    assert len(server.requests) == 1
