"""A local HTTP server that records each agent call: its idempotency key, when it started and
when it ended (the answer sent, or the client seen closing the connection)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HANG = "hang"  # answer nothing and wait for the client to close the connection
HOLD = "hold"  # answer 200 once ``CallsServer.released`` is set (or the client went away)


@dataclass
class Call:
    key: str | None
    body: Any
    started: float
    ended: float | None = None
    closed_by_client: bool = False


class CallsServer:
    """Answers POSTs from a script: each item is an HTTP status, ``HANG`` or ``HOLD``; after
    the script every call answers 200 with ``{"ok": true, "call": n}``."""

    def __init__(self, script: list[int | str] | None = None) -> None:
        self.script = list(script or [])
        self.calls: list[Call] = []
        self.released = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def keys(self) -> list[str | None]:
        return [c.key for c in self.calls]

    @contextlib.contextmanager
    def running(self) -> Iterator[CallsServer]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()

    def _next(self, call: Call) -> tuple[int, int | str]:
        with self._lock:
            self.calls.append(call)
            number = len(self.calls)
            return number, self.script.pop(0) if self.script else 200

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                call = Call(self.headers.get("Idempotency-Key"), body, time.monotonic())
                number, action = server._next(call)
                if action == HANG:
                    self._wait_for_close(call)
                    return
                if action == HOLD:
                    server.released.wait(300)
                    action = 200
                payload = json.dumps({"ok": action == 200, "call": number}).encode()
                self.send_response(int(action))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                call.ended = time.monotonic()

            def _wait_for_close(self, call: Call) -> None:
                # The client stops the call by closing: the read then returns b"" (or fails).
                sock: socket.socket = self.connection
                sock.settimeout(120)
                with contextlib.suppress(OSError):
                    while sock.recv(1024):
                        pass
                call.ended, call.closed_by_client = time.monotonic(), True
                self.close_connection = True

        return Handler
