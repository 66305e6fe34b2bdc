"""HTTP plumbing the HTTP agents share: status codes, transport failures and bodies mapped to
``AgentError`` kinds, with secrets masked from every message."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpcore
import httpx

from agent_resources.base import AgentError
from agent_resources.cancel import Cancellation
from agent_resources.catalog import AgentEntry
from baton.secrets import Masker

EXCERPT_CHARS = 200


def masker_for(entry: AgentEntry, env: Mapping[str, str], extra: Iterable[str] = ()) -> Masker:
    """A masker knowing the values of the entry's secret env vars, plus ``extra`` values."""
    secret_names = {spec.name for spec in entry.env if spec.is_secret}
    values = [value for name, value in env.items() if name in secret_names]
    return Masker([*values, *extra])


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header (seconds or an HTTP date) as seconds from now; None if absent."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def _excerpt(response: httpx.Response, masker: Masker) -> str:
    text = masker.text(" ".join(response.text.split()))
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "…"


def _what(response: httpx.Response) -> str:
    return f"{response.request.method} {response.request.url} answered {response.status_code}"


class _AbortableBackend(httpcore.SyncBackend):
    """Opens sockets as usual and keeps them, so a cancellation can shut them down.

    Closing an httpx client from another thread does not wake a thread blocked reading its
    socket; ``shutdown`` does (the read returns at once and the server sees the close).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: list[httpcore.NetworkStream] = []
        self._aborted = False

    def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        if self._aborted:
            raise httpcore.ConnectError("the call was cancelled")
        stream = super().connect_tcp(*args, **kwargs)
        with self._lock:
            self._streams.append(stream)
        if self._aborted:  # cancelled while connecting
            self.abort()
        return stream

    def abort(self) -> None:
        self._aborted = True
        with self._lock:
            streams = list(self._streams)
        for stream in streams:
            sock = stream.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class _AbortableTransport(httpx.HTTPTransport):
    def __init__(self, backend: _AbortableBackend) -> None:
        super().__init__()
        # httpx builds its pool without a way to pass a network backend: rebuild it with ours
        # (tests/agent_resources/test_cancel.py fails should httpx stop using ``_pool``).
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(), network_backend=backend
        )


def cancellable_client(cancellation: Cancellation, **kwargs: Any) -> httpx.Client:
    """An ``httpx.Client`` whose requests end at once (connections shut) when ``cancellation``
    is set, also while another thread is blocked reading an answer."""
    backend = _AbortableBackend()
    client = httpx.Client(transport=_AbortableTransport(backend), **kwargs)
    cancellation.on_cancel(backend.abort)
    return client


def status_error(response: httpx.Response, masker: Masker) -> AgentError:
    """The error for a non-2xx answer: 429 rate_limited, 5xx server, 408 timeout, else client."""
    code, what = response.status_code, masker.text(_what(response))
    after = retry_after_seconds(response.headers.get("Retry-After"))
    if code == 429:
        return AgentError(f"{what} (rate limited)", kind="rate_limited", retry_after=after)
    if code >= 500:
        return AgentError(f"{what}: {_excerpt(response, masker)}", kind="server", retry_after=after)
    if code == 408:
        return AgentError(f"{what} (request timeout)", kind="timeout", retry_after=after)
    return AgentError(f"{what}: {_excerpt(response, masker)}", kind="client")


def parse_body(response: httpx.Response, masker: Masker) -> Any:
    """The JSON body of a 2xx answer (None when empty).

    Raises:
        AgentError: the body is not JSON (kind ``bad_response``).
    """
    if not response.content.strip():
        return None
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        detail = _excerpt(response, masker)
        what = masker.text(_what(response))
        message = f"{what} with a body that is not JSON: {detail}"
        raise AgentError(message, kind="bad_response") from None


def call_json(client: httpx.Client, method: str, url: str, *, masker: Masker, **kwargs: Any) -> Any:
    """Send one request and return its JSON body; every failure becomes an ``AgentError``.

    Timeouts and connection failures are kind ``timeout``; a malformed URL is ``config``.
    """
    where = masker.text(f"{method} {url}")
    try:
        response = client.request(method, url, **kwargs)
    except httpx.TimeoutException as exc:
        raise AgentError(f"{where} timed out ({type(exc).__name__})", kind="timeout") from None
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise AgentError(f"{where}: invalid URL ({masker.text(str(exc))})", kind="config") from None
    except httpx.DecodingError as exc:
        raise AgentError(f"{where}: undecodable body ({exc})", kind="bad_response") from None
    except httpx.TransportError as exc:
        detail = masker.text(f"{type(exc).__name__}: {exc}")
        raise AgentError(f"{where} failed: {detail}", kind="timeout") from None
    if not response.is_success:
        raise status_error(response, masker)
    return parse_body(response, masker)


def dig(value: Any, path: str) -> Any:
    """``value[a][b]`` for the dotted ``path`` "a.b"; None when any part is missing."""
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value
