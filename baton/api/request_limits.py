"""Every request checked before any route: URL, headers and cookies valid text, the body
within its size, a JSON body strictly parsed.

An ASGI middleware rather than per-route checks so that no route can forget them, and so the
body is counted as it arrives (a chunked body without Content-Length is cut at the limit
too) before anything parses it. Refusals answer with the API's error shape: 413 above the
size, 422 naming the field otherwise (``path``, a query parameter, a header or cookie name,
or the JSON path inside the body such as ``inputs.topic[2].name``).

``POST /webhooks/{source}`` reads its own body after checking the source, against
``BATON_WEBHOOKS__MAX_BODY_BYTES`` and with the same strict JSON after the signature: an
unsigned body is refused as unsigned whatever it holds.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from http.cookies import _unquote  # type: ignore[attr-defined]
from urllib.parse import unquote_to_bytes

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from baton.api.errors import error_response
from baton.settings import Settings
from orchestration_defs.language.values import (
    ValueLimits,
    ValueProblem,
    check_text,
    decode_utf8,
    parse_json,
    shown,
)

WEBHOOK_PATH = re.compile(r"^/webhooks/[^/]+$")
FORM_TYPE = "application/x-www-form-urlencoded"
_JSON_TYPE = re.compile(r"^application/([^;]*\+)?json\s*(;|$)", re.IGNORECASE)


class _TooLarge(Exception):
    pass


class RequestLimits:
    """The middleware; ``settings.api`` gives the body limit and the JSON depth."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.max_body = settings.api.max_body_bytes
        self.json_limits = ValueLimits(None, None, settings.api.max_json_depth, None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            _check_url_and_headers(scope)
        except ValueProblem as exc:  # its message names the part: no field prefix needed
            await error_response(422, "invalid", exc.message, field=exc.field)(scope, receive, send)
            return
        if WEBHOOK_PATH.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        try:
            body = await self._read(scope, receive)
        except _TooLarge:
            message = f"the request body is over {self.max_body} bytes (BATON_API__MAX_BODY_BYTES)"
            await error_response(413, "too_large", message)(scope, receive, send)
            return
        if body is None:  # the client went away
            return
        try:
            await self._check_body(scope, body)
        except ValueProblem as exc:
            await _invalid(exc, scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _check_body(self, scope: Scope, body: bytes) -> None:
        if not body:
            return
        content_type = (_header(scope, b"content-type") or "").strip()
        if _JSON_TYPE.match(content_type):
            # Off the event loop: a megabyte of JSON takes a moment to walk.
            await run_in_threadpool(parse_json, body, limits=self.json_limits)
        elif content_type.lower().startswith(FORM_TYPE):
            # Starlette would decode bad bytes into U+FFFD silently: refuse them instead.
            await run_in_threadpool(_check_form, body)

    async def _read(self, scope: Scope, receive: Receive) -> bytes | None:
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise _TooLarge  # refused before a byte of it is read
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the app the body already read, then the client's own messages
    (a disconnect, which event streams wait for)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _invalid(exc: ValueProblem, scope: Scope, receive: Receive, send: Send) -> None:
    response = error_response(422, "invalid", str(exc), field=exc.field)
    await response(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def _check_form(body: bytes) -> None:
    for name, value in _query_pairs(body):
        field = _check_encoded(name, "form", "a form field name", form=True)
        _check_encoded(value, field, f"form field '{shown(field, 40)}'", form=True)


# URL, headers, cookies -------------------------------------------------------------------------


def _check_url_and_headers(scope: Scope) -> None:
    """Raises ValueProblem for the first part of the request line or headers that is not
    valid text (percent-decoded UTF-8 without NUL or surrogates)."""
    raw_path = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
    _check_encoded(raw_path, "path", "the path")
    for name, value in _query_pairs(scope.get("query_string", b"")):
        field = _check_encoded(name, "query", "a query parameter name", form=True)
        _check_encoded(value, field, f"query parameter '{shown(field, 40)}'", form=True)
    for key, value in scope["headers"]:
        name = key.decode("latin-1").lower()
        if b"\x00" in value:
            raise ValueProblem(name, f"header '{shown(name, 40)}' may not contain NUL")
        if name == "cookie":
            _check_cookies(value.decode("latin-1"))


def _query_pairs(query: bytes) -> Iterator[tuple[bytes, bytes]]:
    """The raw (name, value) pairs of a query string or a URL-encoded form."""
    for part in query.split(b"&"):
        if part:
            name, _, value = part.partition(b"=")
            yield name, value


def _check_encoded(raw: bytes, field: str, what: str, *, form: bool = False) -> str:
    """The percent-decoded text of ``raw`` (``+`` is a space in a query); ``field`` names it
    in a problem."""
    decoded = unquote_to_bytes(raw.replace(b"+", b" ") if form else raw)
    try:
        text = decode_utf8(decoded, field)
        return check_text(text, field)
    except ValueProblem as exc:
        raise ValueProblem(field, f"{what}: {exc.message}") from None


def _check_cookies(header: str) -> None:
    # The cookie parser undoes quoting (a quoted "\000" is NUL), so check what it yields.
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        try:
            check_text(_unquote(value.strip()), name)
        except ValueProblem as exc:
            raise ValueProblem(
                shown(name, 40), f"cookie '{shown(name, 40)}': {exc.message}"
            ) from None
