"""``ctx.http``: the only way out of the sandbox, a framed request the parent makes or refuses.

The child has no network (its own network namespace, no socket call in its seccomp list); a
call here writes one frame on the result pipe and waits for the answer frame on stdin. The
parent (``broker.py``) checks the host against the entry's, makes the call with its own limits
and answers with the response or an error, which becomes an exception here: a refusal is a
``SandboxViolation`` (it also fails the call if caught), a timeout or transport failure an
``AgentFailure`` of kind ``timeout``/``server`` (retryable), a size limit one of kind ``limit``.

Standard library only.
"""

from __future__ import annotations

import json as _json
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from agent_resources.sandbox import frames
from agent_resources.sandbox.errors import AgentFailure, SandboxViolation


class Headers(Mapping[str, str]):
    """Response headers, looked up without regard to case (repeated ones joined by ``, ``)."""

    def __init__(self, pairs: list[list[str]]) -> None:
        self._items: dict[str, str] = {}
        for name, value in pairs:
            key = str(name).lower()
            self._items[key] = f"{self._items[key]}, {value}" if key in self._items else value

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


class Request:
    """What ``response.request`` says (for messages)."""

    def __init__(self, method: str, url: str) -> None:
        self.method = method
        self.url = url


class Response:
    """An HTTP answer, shaped like httpx's for what agents use."""

    def __init__(self, request: Request, status: int, headers: Headers, content: bytes) -> None:
        self.request = request
        self.status_code = status
        self.headers = headers
        self.content = content

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def text(self) -> str:
        return self.content.decode(self._charset(), "replace")

    def json(self) -> Any:
        return _json.loads(self.content)

    def _charset(self) -> str:
        for part in self.headers.get("content-type", "").split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                return value.strip('"')
        return "utf-8"


class Http:
    """``ctx.http``: ``request(method, url, ...)`` and ``get``/``post``/``put``/``patch``/
    ``delete``, with ``params=``, ``headers=``, ``json=``, ``content=`` and ``timeout=``."""

    def __init__(
        self,
        send: Callable[[dict[str, Any], bytes], None],
        receive: Callable[[], tuple[dict[str, Any], bytes]],
        default_timeout: float,
        violations: list[SandboxViolation],
    ) -> None:
        self._send = send
        self._receive = receive
        self._timeout = default_timeout
        self._violations = violations
        self._lock = threading.Lock()
        self._next = 0

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | str | None = None,
        timeout: float | None = None,
    ) -> Response:
        """Ask the parent to make one call; the response, or an exception naming why not."""
        body, sent_headers = _body(json, content, dict(headers or {}))
        verb = str(method).upper()
        meta: dict[str, Any] = {
            "t": "http",
            "method": verb,
            "url": str(url),
            "params": [[str(k), str(v)] for k, v in (params or {}).items()],
            "headers": [[str(k), str(v)] for k, v in sent_headers.items()],
            "timeout": float(timeout if timeout is not None else self._timeout),
        }
        with self._lock:
            self._next += 1
            meta["id"] = self._next
            self._send(meta, body)
            answer, data = self._receive()
        if answer.get("error"):
            raise self._failure(answer["error"])
        request = Request(verb, str(answer.get("url") or url))
        return Response(request, int(answer["status"]), Headers(answer["headers"]), data)

    def get(self, url: str, **kwargs: Any) -> Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> Response:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> Response:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> Response:
        return self.request("DELETE", url, **kwargs)

    def _failure(self, error: Mapping[str, Any]) -> Exception:
        kind, message = str(error.get("kind") or "server"), str(error.get("message"))
        if kind == "sandbox":
            violation = SandboxViolation(message)
            self._violations.append(violation)
            return violation
        return AgentFailure(message, kind=kind)


def _body(json: Any, content: bytes | str | None, headers: dict[str, str]) -> tuple[bytes, Any]:
    if json is not None and content is not None:
        raise TypeError("give json= or content=, not both")
    if json is not None:
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
        return _json.dumps(json).encode(), headers
    if isinstance(content, str):
        return content.encode(), headers
    return bytes(content or b""), headers


def channel(read_fd: int, write_fd: int) -> tuple[Any, Any]:
    """The send and receive functions of the child's end of the pipes."""

    def send(meta: dict[str, Any], body: bytes) -> None:
        frames.write_all(write_fd, frames.encode(meta, body))

    def receive() -> tuple[dict[str, Any], bytes]:
        return frames.read_frame(read_fd)

    return send, receive
