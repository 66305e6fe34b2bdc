"""The parent's HTTP broker: makes the calls a sandboxed agent asks for through ``ctx.http``.

The child has no network; each request arrives as a frame. The broker refuses a URL whose host
is not one of the entry's (``url_env`` hosts and ``allowed_hosts``; the check is on the URL
httpx will actually connect to, so there is no parsing gap), a scheme other than http(s), and
headers that would change where or how the request goes (``Host``, ``Content-Length``,
``Transfer-Encoding``, ``Connection``). Redirects are not followed (a 3xx is answered as it
is, so a redirect cannot lead to another host). Each call's timeout is the smaller of the one
asked for and what is left of the step's wall clock, checked again between response chunks;
request and (decoded) response bodies are capped, as is the number of calls. The worker's own
environment is not used (``trust_env=False``: no proxy variables, no ``.netrc``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

_DROPPED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_HOP_BY_HOP = frozenset({"content-encoding", "content-length", "transfer-encoding", "connection"})


class Refused(Exception):
    """A request the broker does not make; ``kind`` is the error kind the child gets."""

    def __init__(self, message: str, kind: str = "sandbox") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class BrokerLimits:
    """What the agent's HTTP may use in one call."""

    max_request_bytes: int
    max_response_bytes: int
    max_requests: int = 500

    @classmethod
    def for_output(cls, max_output_bytes: int) -> BrokerLimits:
        """Bodies in proportion to the output the step may keep (base64 JSON is ~4/3)."""
        size = max(2 * max_output_bytes, 1_000_000)
        return cls(max_request_bytes=size, max_response_bytes=size)


class Broker:
    """One step's broker: its allowed hosts, its deadline, its HTTP client."""

    def __init__(self, hosts: Iterable[str], limits: BrokerLimits, deadline: float) -> None:
        self.hosts = frozenset(h.lower().strip("[]") for h in hosts)
        self.limits = limits
        self.deadline = deadline
        self.calls = 0
        self._opened: httpx.Client | None = None

    @property
    def _client(self) -> httpx.Client:
        # Made on the first call: its TLS context costs more than a call that makes none.
        if self._opened is None:
            self._opened = httpx.Client(follow_redirects=False, trust_env=False)
        return self._opened

    def close(self) -> None:
        if self._opened is not None:
            self._opened.close()

    def handle(self, meta: dict[str, Any], body: bytes) -> tuple[dict[str, Any], bytes]:
        """The answer frame for one request frame; never raises."""
        answer: dict[str, Any] = {"t": "http", "id": meta.get("id")}
        try:
            response, content = self._call(meta, body)
        except Refused as exc:
            return {**answer, "error": {"kind": exc.kind, "message": str(exc)}}, b""
        headers = [[k, v] for k, v in response.headers.multi_items() if k not in _HOP_BY_HOP]
        answer |= {"status": response.status_code, "headers": headers, "url": str(response.url)}
        return answer, content

    def _call(self, meta: dict[str, Any], body: bytes) -> tuple[httpx.Response, bytes]:
        self.calls += 1
        if self.calls > self.limits.max_requests:
            raise Refused(f"more than {self.limits.max_requests} HTTP calls", kind="limit")
        if len(body) > self.limits.max_request_bytes:
            raise Refused(
                f"HTTP request body larger than {self.limits.max_request_bytes} bytes", "limit"
            )
        request = self._build(meta, body)
        timeout = min(float(meta.get("timeout") or 30), self.deadline - time.monotonic())
        where = f"{request.method} {request.url}"
        if timeout <= 0:
            raise Refused(f"{where}: no time left in the step", kind="timeout")
        request.extensions["timeout"] = httpx.Timeout(timeout).as_dict()
        try:
            response = self._client.send(request, stream=True)
            try:
                return response, self._read(response, where)
            finally:
                response.close()
        except httpx.TimeoutException as exc:
            raise Refused(f"{where} timed out ({type(exc).__name__})", kind="timeout") from None
        except httpx.DecodingError as exc:
            raise Refused(f"{where}: undecodable body ({exc})", kind="bad_response") from None
        except httpx.TransportError as exc:
            raise Refused(f"{where} failed: {type(exc).__name__}: {exc}", "server") from None

    def _build(self, meta: dict[str, Any], body: bytes) -> httpx.Request:
        try:
            headers = [(str(k), str(v)) for k, v in meta.get("headers") or []]
            params = [(str(k), str(v)) for k, v in meta.get("params") or []]
            url = httpx.URL(str(meta.get("url") or ""), params=params or None)
        except (httpx.InvalidURL, TypeError, ValueError) as exc:
            raise Refused(f"invalid URL ({exc})", kind="config") from None
        if url.scheme not in ("http", "https"):
            raise Refused(f"only http and https URLs can be called (not '{url.scheme}:')")
        if url.host.lower() not in self.hosts:
            allowed = ", ".join(sorted(self.hosts)) or "none"
            raise Refused(f"network access to host '{url.host}' is not allowed ({allowed})")
        kept = [(k, v) for k, v in headers if k.lower() not in _DROPPED_HEADERS]
        method = str(meta.get("method") or "GET")
        try:
            return self._client.build_request(method, url, headers=kept, content=body or None)
        except (httpx.HTTPError, TypeError, ValueError) as exc:
            raise Refused(f"invalid request ({exc})", kind="config") from None

    def _read(self, response: httpx.Response, where: str) -> bytes:
        cap, kept = self.limits.max_response_bytes, bytearray()
        for chunk in response.iter_bytes():
            kept += chunk
            if len(kept) > cap:
                raise Refused(f"{where}: response larger than {cap} bytes", kind="limit")
            if time.monotonic() > self.deadline:
                raise Refused(f"{where}: the step's time ran out while reading", "timeout")
        return bytes(kept)
