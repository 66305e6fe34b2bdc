"""A real HTTP server on 127.0.0.1 for contract tests, answering from scripted routes.

Usage::

    with FakeServer() as server:
        server.route("POST", "/v1/chat/completions", lambda req: Reply(200, {...}))
        server.script("POST", "/v1/chat/completions", [Reply(429, headers={"Retry-After": "1"}),
                                                      Reply(200, {...})])
        url = server.url  # http://127.0.0.1:<port>
        ...
        server.requests  # every request received, in order

A route's handler gets a ``Request`` and returns a ``Reply``. ``script`` answers with the
replies in order, then keeps repeating the last one. A Reply with ``delay`` sleeps first (for
timeouts); ``raw`` sends bytes as they are (for malformed bodies).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    delay: float = 0.0


Handler = Callable[[Request], Reply]


class FakeServer:
    """A threaded HTTP server with routes keyed by (method, path)."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Handler] = {}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def route(self, method: str, path: str, handler: Handler) -> None:
        self.routes[(method.upper(), path)] = handler

    def script(self, method: str, path: str, replies: list[Reply]) -> None:
        pending = list(replies)

        def handler(_request: Request) -> Reply:
            with self._lock:
                return pending.pop(0) if len(pending) > 1 else pending[0]

        self.route(method, path, handler)

    def calls(self, method: str, path: str) -> list[Request]:
        return [r for r in self.requests if r.method == method.upper() and r.path == path]

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:  # keep test output quiet
                return

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length) if length else b"",
                )
                with fake._lock:
                    fake.requests.append(request)
                handler = fake.routes.get((self.command, parts.path))
                reply = handler(request) if handler else Reply(404, {"error": "no route"})
                if reply.delay:
                    time.sleep(reply.delay)
                payload = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    headers = {"Content-Type": "application/json", **reply.headers}
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        return _Handler
